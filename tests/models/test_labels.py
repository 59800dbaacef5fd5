import pytest

from models import NAMES, UnknownLabelError, label_name, parse_label


def test_ten_official_names_in_order():
    assert len(NAMES) == 10
    assert NAMES[0] == "T-shirt/top" and NAMES[6] == "Shirt" and NAMES[9] == "Ankle boot"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (9, 9),
        ("3", 3),
        (" 7 ", 7),
        ("sneaker", 7),
        ("SNEAKER", 7),
        ("t-shirt", 0),
        ("T-shirt/top", 0),
        ("tshirt top", 0),
        ("ankle boot", 9),
        ("Ankle_Boot", 9),
        ("trousers", 1),
        ("bag", 8),
    ],
)
def test_lookup_by_id_or_forgiving_name(text, expected):
    assert parse_label(text) == expected


@pytest.mark.parametrize("bad", [10, -1, "10", "hat", "", "1e3", 3.0, None, True, "9" * 40])
def test_unknown_label_lists_valid_ones(bad):
    with pytest.raises(UnknownLabelError) as info:
        parse_label(bad)
    message = str(info.value)
    assert "0=T-shirt/top" in message and "9=Ankle boot" in message


def test_label_name():
    assert label_name("sneaker") == "Sneaker"
    assert label_name(5) == "Sandal"
