"""Answer text: formatting and a parser that reads every documented form and never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depthlm_hf.tasks.text import OFFICIAL_ANSWER, TASKS, format_answer, get_task, parse_answer, question


@settings(max_examples=500, deadline=None)
@given(st.floats(0.01, 500.0))
def test_format_parse_round_trip(value):
    assert parse_answer(format_answer(value)) == round(value, 2)
    assert parse_answer(format_answer(value, template=OFFICIAL_ANSWER)) == round(value, 2)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.none(), st.lists(st.text())))
def test_parser_never_raises(text):
    result = parse_answer(text)
    assert result is None or isinstance(result, float)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The point is around 3.25 meters away from the camera.", 3.25),
        ("<think> The point is around 3.00 meters away. </think><answer> 2.75 </answer>", 2.75),
        ("<answer>4</answer>", 4.0),
        ("<answer> unsure </answer> maybe 5 m", 5.0),
        ("250 cm", 2.5),
        ("1500mm", 1.5),
        ("0.5 km away", 500.0),
        ("2 metres", 2.0),
        ("1,250.5 meters", 1250.5),
        ("3,25 m", 3.25),
        # the comma rule: thousands only when grouped in threes after a nonzero lead, else a decimal comma
        ("3,1415 meters", 3.1415),
        ("0,1234", 0.1234),
        ("0,123 m", 0.123),
        ("1,250 m", 1250.0),
        ("12,345,678", 12345678.0),
        ("350,0 cm", 3.5),
        ("1,2,3 km", 1.0),  # a list: the first number, the unit belongs to the list
        ("2.5e1 m", 25.0),
        ("3e-1", 0.3),
        ("about 7 meters, maybe 8", 7.0),
        ("", None),
        ("no number here", None),
        ("nan meters", None),
        ("inf", None),
        ("1e999 m", None),
        (None, None),
        (3.5, None),
        (b"3.5", None),
    ],
)
def test_parser_forms(text, expected):
    assert parse_answer(text) == expected


def test_units_only_convert_lengths():
    assert parse_answer("The camera needs around 250 seconds.", task="time") == 250.0
    assert parse_answer("30 cm", task="time") == 30.0


def test_templates():
    assert format_answer(3.14159) == "The point is around 3.14 meters away from the camera."
    assert question() == "How many meters is this point from the camera?"
    assert (
        question("speed", time=2)
        == "How many meters per second must the camera move to reach this point in 2.00 seconds?"
    )
    assert set(TASKS) == {"distance", "z_distance", "speed", "time", "two_point_distance", "translation", "marker_row"}
    assert get_task("two_point_distance").num_points == 2 and get_task("translation").num_images == 2


def test_errors():
    with pytest.raises(ValueError, match="Unknown task 'volume'. Available: distance, z_distance"):
        get_task("volume")
    with pytest.raises(ValueError, match="needs the field 'speed'"):
        question("time")
    with pytest.raises(ValueError, match="`value` must be finite and >= 0"):
        format_answer(float("nan"))
    with pytest.raises(ValueError, match="`value` must be finite and >= 0"):
        format_answer(-1.0)
    with pytest.raises(TypeError, match="`value` must be a number"):
        format_answer("3")


def test_parser_refuses_an_unknown_task_but_never_a_text():
    with pytest.raises(ValueError, match="Unknown task 'volume'. Available: distance, z_distance, speed, time"):
        parse_answer("3 m", "volume")
    assert parse_answer(None, "time") is None and parse_answer("2 km", "time") == 2.0


def test_one_registry_entry_per_task():
    from depthlm_hf.tasks.text import TASKS

    assert all(name == task.name for name, task in TASKS.items())
    assert {n: (t.num_points, t.num_images, t.fields) for n, t in TASKS.items()} == {
        "distance": (1, 1, ()),
        "z_distance": (1, 1, ()),
        "speed": (1, 1, ("time",)),
        "time": (1, 1, ("speed",)),
        "two_point_distance": (2, 1, ()),
        "translation": (0, 2, ()),
        "marker_row": (1, 1, ()),
    }
