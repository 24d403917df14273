"""Items with their own validity window and share of airtime, played by the real sequencer."""

from __future__ import annotations

from collections import Counter

from tests.player.conftest import BLUE, RED, Harness, image, layout, manifest

RED_RGB = (220, 30, 30)
BLUE_RGB = (30, 60, 220)
GREEN_RGB = (0, 160, 0)
LUNCH = {"from": "09:10", "to": "09:20"}  # the harness starts at 09:00 UTC


async def test_an_item_outside_its_window_is_skipped_without_a_black_frame(
    harness: Harness,
) -> None:
    m = manifest(("p1", [image("a", RED, 60_000), image("lunch", BLUE, 60_000, valid=LUNCH)]))
    colours: list[tuple[int, int, int]] = []
    harness.player.add_frame_listener(lambda _ns: colours.append(harness.pixel()))
    await harness.player.set_manifest(m)
    await harness.run(30 * 60)
    starts = [(e.item, e.due) for e in harness.of("start")]
    assert starts[:10] == [
        ("a", 0.0),
        ("a", 60.0),
        ("a", 120.0),
        ("a", 180.0),
        ("a", 240.0),
        ("a", 300.0),
        ("a", 360.0),
        ("a", 420.0),
        ("a", 480.0),
        ("a", 540.0),
    ]
    during = [item for item, due in starts if due is not None and 600 <= due < 1200]
    assert during == ["lunch", "a"] * 5
    after = {item for item, due in starts if due is not None and due >= 1200}
    assert after == {"a"}
    assert all(e.t == e.due for e in harness.of("start")), "every switch on its deadline"
    assert set(colours) == {RED_RGB, BLUE_RGB}, "never a black frame"


async def test_a_zone_with_no_valid_item_shows_the_background_and_wakes_on_time(
    harness: Harness,
) -> None:
    m = manifest(
        ("p1", [image("lunch", BLUE, 30_000, valid=LUNCH)]),
        layouts=[layout("l1", "p1", background="#00a000")],
    )
    await harness.player.set_manifest(m)
    await harness.run(1)
    assert harness.pixel() == GREEN_RGB, "nothing may play before 09:10: the background shows"
    frames = harness.display.frames
    await harness.run(598)
    assert harness.display.frames == frames, "a blank zone costs no frames while it waits"
    await harness.run(1)
    assert harness.pixel() == BLUE_RGB
    first = harness.of("start")[0]
    assert (first.item, first.due, first.t) == ("lunch", 600.0, 600.0)
    await harness.run(600)
    assert harness.pixel() == GREEN_RGB, "its window closed at 09:20"
    ends = [(e.item, e.due) for e in harness.of("end")]
    assert ends[-1] == ("lunch", 1200.0)
    assert len(harness.of("start")) == 20, "one play per 30 s inside the window"


async def test_shares_of_airtime_play_their_count_each_hour(harness: Harness) -> None:
    m = manifest(
        (
            "p1",
            [
                image("a", RED, 10_000),
                image("ad", BLUE, 15_000, share={"percent": 10}),
                image("promo", BLUE, 5_000, share={"per_hour": 6}),
            ],
        )
    )
    await harness.player.set_manifest(m)
    await harness.run(3 * 3600)
    hours = Counter(
        (int((e.due or 0) // 3600), e.item) for e in harness.of("start") if e.item != "a"
    )
    # The harness starts at 09:00: hours 0, 1 and 2 are full local hours.
    for hour in range(3):
        assert hours[(hour, "ad")] == 24
        assert hours[(hour, "promo")] == 6
    assert all(e.t == e.due for e in harness.of("start"))


async def test_a_layout_with_a_share_takes_its_slots_and_the_schedule_resumes(
    harness: Harness,
) -> None:
    campaign = {
        "id": "campaign",
        "layout": "l2",
        "priority": 5,
        "share": {"per_hour": 2, "slot_ms": 30_000},
    }
    m = manifest(
        ("p1", [image("a", RED, 60_000), image("b", BLUE, 60_000)]),
        (
            "p2",
            [
                {
                    "id": "ad",
                    "type": "text",
                    "text": "ad",
                    "duration_ms": 10_000,
                    "background": "#00a000",
                }
            ],
        ),
        layouts=[layout("l1", "p1"), layout("l2", "p2")],
        schedule=[campaign],
    )
    await harness.player.set_manifest(m)
    await harness.run(3600)
    ads = [(e.t, e.item) for e in harness.of("start") if e.layout == "l2"]
    # Two 30 s slots an hour, centred at :15 and :45: 09:14:45 and 09:44:45 (t = 885, 2685).
    assert [t for t, item in ads if item == "ad"][::3] == [885.0, 2685.0]
    assert len(ads) == 6, "three 10 s plays per slot"
    resumed = [
        (e.t, e.item, e.due) for e in harness.of("start") if e.layout == "l1" and 915 <= e.t < 1000
    ]
    # l1 comes back where it would be at 915 s: b (due 900) until its deadline, a at 960.
    assert resumed == [(915.0, "b", 915.0), (960.0, "a", 960.0)]
    assert all(e.t == e.due for e in harness.of("start"))
