from hub.topics import BadPayload, Topics, parse_json_object, topic_matches

import pytest


@pytest.mark.parametrize("f,t,ok", [
    ("hub/+/set", "hub/lamp/set", True), ("hub/+/set", "hub/a/b/set", False),
    ("homie/5/#", "homie/5/x/$state", True), ("#", "$SYS/broker", False), ("+/x", "$SYS/x", False),
    ("a/#", "a", True), ("a/b", "a/b/c", False), ("a/+", "a/", True),
])
def test_topic_matches(f: str, t: str, ok: bool) -> None:
    assert topic_matches(f, t) is ok


def test_canonical_topics() -> None:
    t = Topics("hub")
    assert (t.state("x"), t.availability("x"), t.set("x"), t.definition("x"), t.bridge_state) == (
        "hub/x", "hub/x/availability", "hub/x/set", "hub/bridge/devices/x", "hub/bridge/state")
    assert t.parse_set("hub/lamp/set") == "lamp"
    assert t.parse_set("hub/bridge/set") is None and t.parse_set("hub/a/b/set") is None
    assert t.parse_set("other/lamp/set") is None


def test_scene_topics() -> None:
    t = Topics("home/hub")
    assert (t.scene_set("movie-night"), t.scene_result("movie-night")) == (
        "home/hub/scene/movie-night/set", "home/hub/scene/movie-night/result")
    assert topic_matches(t.scene_set_filter, t.scene_set("all-off"))
    assert not topic_matches(t.set_filter, t.scene_set("all-off"))  # never mistaken for a device command
    assert t.parse_scene_set("home/hub/scene/all-off/set") == "all-off"
    for topic in ("home/hub/scene/set", "home/hub/scene/a/b/set", "home/hub/scene/x/result", "hub/scene/x/set"):
        assert t.parse_scene_set(topic) is None


@pytest.mark.parametrize("raw", [b"\xff", b"[]", b"nope", b"1", b"x" * 70000])
def test_bad_payloads(raw: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_json_object(raw)
