# Shell helpers shared by the guest's init scripts (sourced; POSIX sh / busybox ash).

# ab_param NAME [CMDLINE]: the value of kernel parameter ab.NAME=VALUE (the last one wins),
# empty if absent. CMDLINE defaults to /proc/cmdline.
ab_param() {
	_ab_want="ab.$1="
	_ab_val=""
	set -f
	for _ab_w in ${2-$(cat /proc/cmdline)}; do
		case "$_ab_w" in
		"$_ab_want"*) _ab_val="${_ab_w#"$_ab_want"}" ;;
		esac
	done
	set +f
	printf '%s' "$_ab_val"
}

# ab_valid_name NAME: true if NAME is a usable host name (letters, digits, '-', '.').
ab_valid_name() {
	case "$1" in
	"" | -* | *[!A-Za-z0-9.-]*) return 1 ;;
	esac
	[ "${#1}" -le 63 ]
}

# ab_valid_swap DEV: true if DEV names a block device path under /dev (e.g. /dev/vda).
ab_valid_swap() {
	case "$1" in
	/dev/*[!A-Za-z0-9/_-]* | /dev/ | /dev/*..*) return 1 ;;
	/dev/?*) return 0 ;;
	esac
	return 1
}

# ab_log MESSAGE: one line on the console, prefixed so a reader knows where it came from.
ab_log() {
	echo "autoballoon: $*" >/dev/console
}

# ab_modparams MODULE [CMDLINE]: the MODULE.key=value words of the kernel command line as
# insmod arguments (key=value ...), as modprobe would pass them. Dashes in the module
# name match underscores, like the kernel's own parsing.
ab_modparams() {
	_ab_mod=$(printf '%s' "$1" | tr - _)
	_ab_out=""
	set -f
	for _ab_w in ${2-$(cat /proc/cmdline)}; do
		case "$_ab_w" in
		*.*=*) ;;
		*) continue ;;
		esac
		_ab_name=$(printf '%s' "${_ab_w%%.*}" | tr - _)
		[ "$_ab_name" = "$_ab_mod" ] && _ab_out="$_ab_out ${_ab_w#*.}"
	done
	set +f
	printf '%s' "${_ab_out# }"
}
