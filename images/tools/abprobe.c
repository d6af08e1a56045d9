// SPDX-License-Identifier: GPL-2.0
/*
 * abprobe: guest-side timing probe for the rig's message-virtqueue tests.
 *
 *   abprobe now                 print CLOCK_REALTIME in nanoseconds
 *   abprobe reclaim [TIMEOUT_S] poll /proc/vmstat every millisecond and print the
 *                               CLOCK_REALTIME (ns) at which the first reclaim pass is
 *                               seen (pgscan_kswapd, pgscan_direct or allocstall_*
 *                               moving); exit 1 if none within TIMEOUT_S (default 60)
 *   abprobe stall [TIMEOUT_S]   the same for the first direct-reclaim stall only
 *                               (allocstall_* moving): prints "stall NS"
 *
 * Built static by the rig and installed in the guest image's /opt/autoballoon/bin.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sum of the reclaim counters (only the stalls: allocstall_*); -1 on read error. */
static long long reclaim_count(int fd, int stalls_only)
{
	static char buf[16384];
	long long sum = 0;
	ssize_t n;
	char *line;

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (line = buf; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (!strncmp(line, "allocstall_", 11) ||
		    (!stalls_only && (!strncmp(line, "pgscan_kswapd ", 14) ||
				      !strncmp(line, "pgscan_direct ", 14))))
			sum += atoll(strchr(line, ' ') + 1);
	}
	return sum;
}

int main(int argc, char **argv)
{
	long long start, deadline, base, cur;
	struct timespec tick = { 0, 1000000 };
	const char *what;
	int fd;

	if (argc >= 2 && !strcmp(argv[1], "now")) {
		printf("%lld\n", now_ns(CLOCK_REALTIME));
		return 0;
	}
	if (argc < 2 || (strcmp(argv[1], "reclaim") && strcmp(argv[1], "stall"))) {
		fprintf(stderr, "usage: abprobe now | abprobe reclaim|stall [TIMEOUT_S]\n");
		return 2;
	}
	what = argv[1];
	fd = open("/proc/vmstat", O_RDONLY);
	if (fd < 0) {
		perror("abprobe: /proc/vmstat");
		return 2;
	}
	start = now_ns(CLOCK_MONOTONIC);
	deadline = start + (argc > 2 ? atoll(argv[2]) : 60) * 1000000000LL;
	base = reclaim_count(fd, !strcmp(what, "stall"));
	printf("armed %lld\n", now_ns(CLOCK_REALTIME));
	fflush(stdout);
	while (now_ns(CLOCK_MONOTONIC) < deadline) {
		cur = reclaim_count(fd, !strcmp(what, "stall"));
		if (cur > base) {
			printf("%s %lld\n", what, now_ns(CLOCK_REALTIME));
			return 0;
		}
		nanosleep(&tick, NULL);
	}
	fprintf(stderr, "abprobe: no %s within the timeout\n", what);
	return 1;
}
