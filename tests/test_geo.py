"""The test geo database builder, lookups through geoip2/maxminddb, and the regions file."""

from __future__ import annotations

import ipaddress
import os
import tempfile

import geoip2.database
import maxminddb
import pytest

import geodb
from geodb.build import build, load_networks
from gslb.conf.problems import ConfigError
from gslb.geo import GeoLookup, load_regions


@pytest.fixture(scope="module")
def mmdb():
    return geodb.default_mmdb()


def test_builder_output_reads_back_with_geoip2(mmdb):
    with geoip2.database.Reader(mmdb) as reader:
        city = reader.city("198.51.100.130")
        assert (city.continent.code, city.country.iso_code, city.subdivisions.most_specific.iso_code) == (
            "NA", "US", "CA")
        assert city.location.latitude == pytest.approx(37.77)
        assert reader.city("2001:db8:c000::1").country.iso_code == "JP"


def test_every_network_of_the_yaml_is_in_the_database(mmdb):
    reader = maxminddb.open_database(mmdb)
    for entry in load_networks(geodb.NETWORKS):
        net = ipaddress.ip_network(entry["prefix"])
        record, prefix = reader.get_with_prefix_len(net.network_address)
        assert prefix == net.prefixlen, entry
        assert record["country"]["iso_code"] == entry["country"]


def test_locate_gives_codes_coordinates_and_network(mmdb):
    geo = GeoLookup(mmdb)
    loc = geo.locate("198.51.100.70")
    assert loc.codes == ("EU-GB-ENG", "EU-GB", "EU")
    assert loc.network == ipaddress.ip_network("198.51.100.64/26")
    assert geo.locate("::ffff:203.0.113.70").codes[1] == "OC-AU"  # IPv4-mapped
    assert geo.locate("127.2.3.4").codes[0] == "NA-US-CA"  # loopback placed for tests
    unknown = geo.locate("10.1.2.3")
    assert unknown.codes == () and unknown.network is not None and 10 << 24 in range(
        int(unknown.network.network_address), int(unknown.network.broadcast_address) + 1)


def test_country_database_without_subdivisions_works():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "country.mmdb")
    build([{"prefix": "192.0.2.0/24", "continent": "EU", "country": "FR"}], path)
    loc = GeoLookup(path).locate("192.0.2.1")
    assert loc.codes == ("EU-FR", "EU") and loc.latitude is None


def test_regions_map_clients(mmdb):
    regions = load_regions(geodb.REGIONS)
    geo = GeoLookup(mmdb)
    assert regions.region_of(geo.locate("198.51.100.130")) == "us-west"  # NA-US-CA beats NA
    assert regions.region_of(geo.locate("198.51.100.200")) == "us-east"
    assert regions.region_of(geo.locate("198.51.100.10")) == "eu-west"
    assert regions.region_of(geo.locate("10.0.0.1")) == "us-east"  # default
    assert regions.site_coordinates()["sin"] == (1.35, 103.82)


def test_bad_regions_file_reports_every_problem():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "regions.yaml")
    with open(path, "w") as f:
        f.write("regions:\n  a:\n    latitude: 100\n    longitude: 0\n  b: nope\ndefault: c\n")
    with pytest.raises(ConfigError) as err:
        load_regions(path)
    text = str(err.value)
    assert f"{path}:3: regions.a.latitude: a number -90..90, not 100" in text  # the line of the value itself
    assert f"{path}:5: regions.b: expected latitude and longitude" in text
    assert f"{path}:6: default: 'c' is not a region" in text
