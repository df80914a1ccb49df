"""GroupLens raw formats and RecBole atomic folders, each over a small file written here."""

from __future__ import annotations

import polars as pl

from recgen.data import load_dataset

GENRE_FLAGS_COMEDY = "|".join(["0"] * 5 + ["1"] + ["0"] * 13)  # 19 flags, Comedy set


def _udata(raw, folder, events):
    raw.write(folder / "u.data", "".join(f"{u}\t{i}\t4\t{t}\n" for u, i, t in events))


def test_ml100k_raw_latin1_titles_and_genres(tmp_path, raw):
    folder = tmp_path / "ml-100k"
    _udata(raw, folder, raw.events())
    items = [
        f"1|Café Society (1995)|01-Jan-1995||http://x|{GENRE_FLAGS_COMEDY}",
        "2|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 3 + ["1"] * 2 + ["0"] * 14),
        "3|unknown||||" + "|".join(["1"] + ["0"] * 18),
        "4|Pyromaniac's Love Story, A|28-Apr-1995||http://x|" + GENRE_FLAGS_COMEDY,
    ]
    raw.write(folder / "u.item", "\n".join(items) + "\n", encoding="latin-1")
    ds = load_dataset(folder)
    assert ds.info["format"] == "ml-100k-raw" and ds.name == "ml-100k"
    assert (ds.num_users, ds.num_items, ds.interactions.height) == (3, 4, 12)
    rows = {r["item_id"]: r for r in ds.items.iter_rows(named=True)}
    assert rows["1"] == {
        "item_id": "1",
        "title": "Café Society",
        "year": "1995",
        "genres": "Comedy",
    }
    assert rows["2"]["genres"] == "Animation|Children's"
    assert rows["3"]["title"] == "unknown" and rows["3"]["year"] is None
    assert rows["4"]["year"] == "1995"  # from the release date when the title has none
    assert ds.interactions["rating"].dtype == pl.Float64
    # auto-detection also works from the u.data file itself
    assert load_dataset(folder / "u.data", cache=False).num_items == 4


def test_ml1m_double_colon_latin1(tmp_path, raw):
    folder = tmp_path / "ml-1m"
    events = raw.events(n_users=3, n_items=3)
    raw.write(folder / "ratings.dat", "".join(f"{u}::{i}::5::{t}\n" for u, i, t in events))
    movies = "1::Café au lait (1993)::Comedy|Drama\n2::Heat (1995)::Action\n3::Zoë (2001)::Drama\n"
    raw.write(folder / "movies.dat", movies, encoding="latin-1")
    ds = load_dataset(folder)
    assert ds.info["format"] == "ml-1m"
    assert ds.title("1") == "Café au lait" and ds.title("3") == "Zoë"
    assert ds.items.filter(pl.col("item_id") == "1")["genres"][0] == "Comedy|Drama"
    assert ds.interactions.height == 9
    assert ds.sequence("2") == ["1", "2", "3"]


def test_ml_latest_quoted_commas(tmp_path, raw):
    folder = tmp_path / "ml-latest-small"
    events = raw.events(n_users=3, n_items=3)
    raw.write(
        folder / "ratings.csv",
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},3.5,{t}\n" for u, i, t in events),
    )
    raw.write(
        folder / "movies.csv",
        "movieId,title,genres\n"
        '1,"American President, The (1995)",Comedy|Drama|Romance\n'
        '2,"Amélie (Fabuleux destin d\'Amélie Poulain, Le) (2001)",Comedy|Romance\n'
        "3,Babylon 5,(no genres listed)\n"
        "99,Never Rated (1990),Drama\n",
    )
    ds = load_dataset(folder)
    assert ds.info["format"] == "ml-latest"
    assert ds.title("1") == "American President, The"
    assert ds.title("2") == "Amélie (Fabuleux destin d'Amélie Poulain, Le)"
    rows = {r["item_id"]: r for r in ds.items.iter_rows(named=True)}
    assert rows["3"]["year"] is None and rows["3"]["genres"] == ""
    assert "99" not in ds.item_index  # movies without ratings are not in the catalogue
    assert ds.interactions["rating"].to_list() == [3.5] * 9


def test_recbole_atomic_folder_and_file(tmp_path, raw):
    folder = tmp_path / "toy"
    events = raw.events(n_users=3, n_items=3)
    raw.write(
        folder / "toy.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t1\t{t}.0\n" for u, i, t in events),
    )
    raw.write(
        folder / "toy.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        '1\tA "quoted" title\t1990\tAction Comedy\n2\tB\tV\tDrama\n3\tC\t2000\tSci-Fi\n',
    )
    ds = load_dataset(folder)
    assert ds.info["format"] == "recbole" and ds.name == "toy"
    assert ds.title("1") == 'A "quoted" title'
    assert ds.items.filter(pl.col("item_id") == "1")["genres"][0] == "Action|Comedy"
    assert ds.interactions["timestamp"].dtype == pl.Int64
    assert load_dataset(folder / "toy.inter", cache=False).num_users == 3


def test_missing_titles_fall_back_to_item_id(tmp_path, raw):
    folder = tmp_path / "ml-1m"
    events = raw.events(n_users=3, n_items=3)
    raw.write(folder / "ratings.dat", "".join(f"{u}::{i}::5::{t}\n" for u, i, t in events))
    raw.write(folder / "movies.dat", "1::One (1990)::Drama\n", encoding="latin-1")
    ds = load_dataset(folder)
    assert ds.title("2") == "2" and ds.num_items == 3
