"""Each kind of bad input raises its specific recgen.errors type with a precise message."""

from __future__ import annotations

import re

import pytest

from recgen.data import DataConfig, load_dataset
from recgen.errors import (
    ConfigError,
    DataFileNotFoundError,
    EmptyDatasetError,
    EncodingError,
    MissingColumnError,
    ParseError,
    UnknownFormatError,
)


def _ratings_csv(raw, folder, body, header="userId,movieId,rating,timestamp\n"):
    raw.write(folder / "ratings.csv", header + body)
    raw.write(folder / "movies.csv", "movieId,title,genres\n1,A (1990),Drama\n")


def test_missing_path(tmp_path):
    with pytest.raises(DataFileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        load_dataset(tmp_path / "nope")


def test_missing_companion_file(tmp_path, raw):
    raw.write(tmp_path / "ml" / "ratings.dat", "1::1::5::100\n")
    with pytest.raises(DataFileNotFoundError, match="movies.dat"):
        load_dataset(tmp_path / "ml", cache=False)


def test_missing_explicit_meta(tmp_path, raw):
    raw.write(
        tmp_path / "r.json",
        raw.jsonl([{"reviewerID": "u", "asin": "a", "overall": 1, "unixReviewTime": 1}]),
    )
    with pytest.raises(DataFileNotFoundError, match="metadata file not found"):
        load_dataset(tmp_path / "r.json", meta_path=str(tmp_path / "meta.json"))


def test_unknown_format_names_known_ones(tmp_path, raw):
    with pytest.raises(UnknownFormatError, match="amazon-2023-csv"):
        load_dataset(tmp_path, format="netflix")
    raw.write(tmp_path / "weird" / "stuff.txt", "hello\n")
    with pytest.raises(UnknownFormatError, match=r"cannot detect.*ml-1m"):
        load_dataset(tmp_path / "weird")
    with pytest.raises(UnknownFormatError, match="'ml-25m'"):
        load_dataset("ml-25m")


def test_missing_column_csv_header(tmp_path, raw):
    _ratings_csv(raw, tmp_path, "1,1,100\n", header="userId,movieId,timestamp\n")
    with pytest.raises(MissingColumnError, match=r"ratings\.csv.*'rating'"):
        load_dataset(tmp_path, cache=False)


def test_missing_field_jsonl(tmp_path, raw):
    recs = [{"user_id": "u", "parent_asin": "p", "timestamp": 1_600_000_000_000}] * 3
    raw.write(tmp_path / "Beauty.jsonl", raw.jsonl(recs))
    with pytest.raises(MissingColumnError, match=r"Beauty\.jsonl: field 'rating' is missing"):
        load_dataset(tmp_path / "Beauty.jsonl", cache=False)


def test_missing_field_is_named_as_in_the_file(tmp_path, raw):
    recs = [{"user_id": "u", "parent_asin": "p", "rating": 1, "timestamp": 1_600_000_000_000}]
    raw.write(tmp_path / "Books.json", raw.jsonl(recs * 3))
    with pytest.raises(MissingColumnError, match="field 'reviewerID' is missing"):
        load_dataset(tmp_path / "Books.json", format="amazon-2018", cache=False)


def test_missing_field_on_one_line(tmp_path, raw):
    recs = [{"user_id": "u", "parent_asin": "p", "rating": 1, "timestamp": 1_600_000_000_000}] * 3
    recs[1] = {"parent_asin": "p", "rating": 1, "timestamp": 1_600_000_000_000}
    raw.write(tmp_path / "Beauty.jsonl", raw.jsonl(recs))
    with pytest.raises(ParseError, match=r"Beauty\.jsonl, line 2: field 'user_id' is missing"):
        load_dataset(tmp_path / "Beauty.jsonl", cache=False)


def test_unparsable_value_names_line_and_column(tmp_path, raw):
    _ratings_csv(raw, tmp_path, "1,1,4.0,100\n1,2,four,200\n")
    with pytest.raises(
        ParseError,
        match=r"ratings\.csv, line 3: column 'rating' has value 'four', expected a number",
    ):
        load_dataset(tmp_path, cache=False)


def test_unparsable_udata_line(tmp_path, raw):
    raw.write(tmp_path / "u.data", "1\t1\t5\t100\n1\t2\t5\n")
    raw.write(tmp_path / "u.item", "1|A|||x|" + "|".join(["0"] * 19) + "\n", encoding="latin-1")
    with pytest.raises(ParseError, match=r"u\.data, line 2: column 'timestamp' is missing"):
        load_dataset(tmp_path, cache=False)


def test_wrong_field_count_double_colon(tmp_path, raw):
    raw.write(tmp_path / "ratings.dat", "1::1::5::100\n1::2::5\n")
    raw.write(tmp_path / "movies.dat", "1::A (1990)::Drama\n", encoding="latin-1")
    with pytest.raises(ParseError, match=r"ratings\.dat, line 2: expected 4 '::'-separated fields"):
        load_dataset(tmp_path, cache=False)


def test_bad_movie_line(tmp_path, raw):
    raw.write(tmp_path / "ratings.dat", "1::1::5::100\n")
    raw.write(tmp_path / "movies.dat", "1::A (1990)::Drama\n2::broken\n", encoding="latin-1")
    with pytest.raises(ParseError, match=r"movies\.dat, line 2: expected 3"):
        load_dataset(tmp_path, cache=False)


def test_invalid_json_line(tmp_path, raw):
    good = '{"reviewerID": "u", "asin": "a", "overall": 1, "unixReviewTime": 1}\n'
    raw.write(tmp_path / "Books.json", good + good + '{"reviewerID": "u", oops\n')
    with pytest.raises(ParseError, match=r"Books\.json, line 3: not valid JSON"):
        load_dataset(tmp_path / "Books.json", cache=False)


def test_wrong_encoding_utf8_formats(tmp_path, raw):
    _ratings_csv(raw, tmp_path, "1,1,4.0,100\n")
    raw.write(
        tmp_path / "movies.csv", "movieId,title,genres\n1,Café (1990),Drama\n", encoding="latin-1"
    )
    with pytest.raises(EncodingError, match=r"movies\.csv, line 2: not valid utf-8"):
        load_dataset(tmp_path, cache=False)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "Books.json").write_bytes(
        b'{"reviewerID": "u", "asin": "a", "overall": 1, "unixReviewTime": 1}\n'
        b'{"reviewerID": "caf\xe9", "asin": "a", "overall": 1, "unixReviewTime": 1}\n'
    )
    with pytest.raises(EncodingError, match=r"Books\.json, line 2: not valid UTF-8"):
        load_dataset(tmp_path / "r" / "Books.json", cache=False)


def test_corrupt_gzip(tmp_path, raw):
    (tmp_path / "Books.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ParseError, match=r"Books\.json\.gz: not a readable gzip file"):
        load_dataset(tmp_path / "Books.json.gz", format="amazon-2018", cache=False)


def test_empty_file_and_empty_after_filtering(tmp_path, raw):
    raw.write(tmp_path / "a" / "u.data", "")
    with pytest.raises(EmptyDatasetError, match=r"u\.data is empty"):
        load_dataset(tmp_path / "a", cache=False)
    raw.write(tmp_path / "b" / "u.data", "1\t1\t5\t100\n1\t2\t5\t101\n2\t1\t5\t100\n")
    raw.write(
        tmp_path / "b" / "u.item", "1|A|||x|" + "|".join(["0"] * 19) + "\n", encoding="latin-1"
    )
    with pytest.raises(EmptyDatasetError, match="no interactions left after filtering"):
        load_dataset(tmp_path / "b", cache=False)  # every user has < 3 events


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown data option"):
        load_dataset("ml-100k", kcor=5)
    with pytest.raises(ConfigError, match="kcore"):
        DataConfig(kcore=-1)
    with pytest.raises(ConfigError, match="min_user_interactions"):
        DataConfig(min_user_interactions=2)
    with pytest.raises(ConfigError, match="min_rating"):
        DataConfig(min_rating="high")  # type: ignore[arg-type]


def test_builtin_name_with_a_foreign_format():
    with pytest.raises(UnknownFormatError, match="does not apply"):
        load_dataset("ml-100k", format="ml-1m")
    assert load_dataset("ml-100k", format="ml-100k").num_users == 943


def test_header_only_file_is_empty(tmp_path, raw):
    raw.write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n")
    raw.write(tmp_path / "movies.csv", "movieId,title,genres\n")
    with pytest.raises(EmptyDatasetError, match="no interactions were read"):
        load_dataset(tmp_path, cache=False)
