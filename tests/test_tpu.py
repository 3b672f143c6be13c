import pytest

from planner.errors import PlanError
from planner.tpu import GENERATIONS, parse_slice, valid_types
from planner.units import GiB


@pytest.mark.parametrize(
    "name,chips,devices,hosts,topology",
    [
        ("v4-8", 4, 4, 1, "v4:2x2x1"),
        ("v4-16", 8, 8, 2, "v4:2x2x2"),
        ("v4-512", 256, 256, 64, "v4:4x8x8"),
        ("v5litepod-16", 16, 16, 4, "v5e:4x4"),
        ("v5e-8", 8, 8, 1, "v5e:2x4"),
        ("v5e-1", 1, 1, 1, "v5e:1x1"),
        ("v5p-128", 64, 64, 16, "v5:4x4x4"),
        ("v6e-8", 8, 8, 1, "v6e:2x4"),
        ("v6e-256", 256, 256, 64, "v6e:16x16"),
        ("tpu7x-8", 4, 8, 1, "tpu7x:2x2x1"),
        ("v2-8", 4, 8, 1, "v2:2x2"),
        ("v3-32", 16, 32, 4, "v3:4x4"),
    ],
)
def test_slice_sizes(name, chips, devices, hosts, topology):
    s = parse_slice(name)
    assert (s.num_chips, s.num_devices, s.num_hosts, s.topology) == (chips, devices, hosts, topology)


def test_limits_per_generation():
    assert parse_slice("v4-8").limit_bytes == 33_014_415_360
    assert GENERATIONS["v5e"].limit_bytes == int(15.75 * GiB)
    assert GENERATIONS["v6e"].limit_bytes == int(31.25 * GiB)
    assert GENERATIONS["tpu7x"].limit_bytes == int(94.75 * GiB)
    assert abs(GENERATIONS["v2"].limit_bytes / GiB - 7.48) < 0.005
    assert abs(GENERATIONS["v5p"].limit_bytes / GiB - 95.74) < 0.005


def test_megacore_devices_per_chip():
    assert parse_slice("v4-8").generation.chip_config_name == "megacore"
    assert parse_slice("v5p-8").num_devices == 4


def test_every_listed_type_parses():
    for name in valid_types():
        s = parse_slice(name)
        assert s.num_devices >= 1 and s.num_devices % s.num_hosts == 0


@pytest.mark.parametrize("bad", ["v9-8", "v4", "v4-7", "v4-x", "", "h100-8", "v5e-3"])
def test_unknown_types(bad):
    with pytest.raises(PlanError) as err:
        parse_slice(bad)
    assert "\n" not in str(err.value)
    msg = str(err.value)
    assert "v4-8" in msg or "comes in sizes" in msg
