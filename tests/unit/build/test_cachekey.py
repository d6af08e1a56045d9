from pathlib import Path

from rig.build.cachekey import KEY_LENGTH, cache_key, digest_tree


def test_key_is_order_independent_and_short():
    a = cache_key({"x": "1", "y": "2"})
    assert a == cache_key({"y": "2", "x": "1"})
    assert len(a) == KEY_LENGTH
    assert a != cache_key({"x": "1", "y": "3"})
    assert a != cache_key({"x": "1"})
    # names matter, not just values
    assert cache_key({"a": "1"}) != cache_key({"b": "1"})


def test_tree_digest_tracks_content_and_names_only(tmp_path: Path):
    t = tmp_path / "t"
    (t / "sub").mkdir(parents=True)
    (t / "a.patch").write_text("one")
    (t / "sub" / "b").write_text("two")
    d1 = digest_tree(t)
    # touching mtimes changes nothing
    (t / "a.patch").touch()
    assert digest_tree(t) == d1
    (t / "a.patch").write_text("one!")
    d2 = digest_tree(t)
    assert d2 != d1
    (t / "a.patch").rename(t / "c.patch")
    assert digest_tree(t) not in (d1, d2)
    # a copy elsewhere hashes the same: absolute paths are not an input
    u = tmp_path / "u"
    (u / "sub").mkdir(parents=True)
    (u / "c.patch").write_text("one!")
    (u / "sub" / "b").write_text("two")
    assert digest_tree(u) == digest_tree(t)


def test_missing_and_empty_tree_are_equal(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    assert digest_tree(tmp_path / "missing") == digest_tree(tmp_path / "empty")


def test_exclude(tmp_path: Path):
    (tmp_path / "keep").write_text("k")
    base = digest_tree(tmp_path)
    (tmp_path / "README.md").write_text("docs")
    assert digest_tree(tmp_path, exclude=frozenset({"README.md"})) == base
