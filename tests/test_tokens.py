"""Column tokens: shapes per modality, NaN indicators, unseen categories, the text cache,
and user names that break naive code (spaces, dots, ``keys``, ``update``, non-ASCII)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from relbench.base import Database, Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
torch_frame = pytest.importorskip("torch_frame")

from t2g_lib.text_embed import EMBED_DIM, CachedTextEmbedder  # noqa: E402
from t2g_lib.tokens import MISSING_CATEGORY, TokenizedDatabase, _fit_columns, tokenize_database  # noqa: E402

TEXTS = ["left-handed slugger", "gold glove shortstop", "naïve rookie", None]


def odd_db() -> tuple[Database, dict[str, dict[str, str]]]:
    """Two tables with every modality and names that collide with Python/SQL/dict words."""
    n = 40
    rng = np.random.default_rng(0)
    keys = pd.DataFrame(
        {
            "keys": np.arange(n),
            "update": rng.normal(size=n),
            "prix.unité €": rng.choice(["a", "b", "c"], n),
            "bio text": [TEXTS[i % 4] for i in range(n)],
            "born at": pd.date_range("1990-01-01", periods=n, freq="7D"),
            "order": rng.integers(0, 5, n).astype(float),
        }
    )
    keys.loc[[2, 5], "update"] = np.nan
    keys.loc[[1], "prix.unité €"] = None
    keys.loc[[7], "born at"] = pd.NaT
    child = pd.DataFrame(
        {
            "id": np.arange(3 * n),
            "keys.id": np.arange(3 * n) % n,
            "type": rng.normal(size=3 * n),
            "season": pd.date_range("2000-01-01", periods=3 * n, freq="D"),
        }
    )
    bare = pd.DataFrame({"pk": np.arange(5), "parent": np.arange(5)})
    db = Database(
        {
            "keys": Table(keys, {}, "keys", None),
            "update": Table(child, {"keys.id": "keys"}, "id", "season"),
            "bare table": Table(bare, {"parent": "keys"}, "pk", None),
        }
    )
    types = {
        "keys": {
            "keys": "key",
            "update": "numerical",
            "prix.unité €": "categorical",
            "bio text": "text",
            "born at": "timestamp",
            "order": "numerical",
        },
        "update": {"id": "key", "keys.id": "key", "type": "numerical"},
        "bare table": {"pk": "key", "parent": "key"},
    }
    return db, types


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("text_cache")


@pytest.fixture(scope="module")
def tokens(cache_dir: Path) -> TokenizedDatabase:
    db, types = odd_db()
    return tokenize_database(db, types, cache_dir)


def _col(tokens: TokenizedDatabase, table: str, label: str):
    tt = tokens[table]
    return next(c for c in tt.columns if c.label == label)


def test_modalities_have_documented_shapes(tokens: TokenizedDatabase) -> None:
    tf = tokens["keys"].frame
    n = 40
    # update, update__isna, order, born at__isna
    assert tf.feat_dict[torch_frame.numerical].shape == (n, 4)
    assert tf.feat_dict[torch_frame.categorical].shape == (n, 1)
    assert tf.feat_dict[torch_frame.categorical].dtype == torch.long
    assert tf.feat_dict[torch_frame.timestamp].shape == (n, 1, 7)
    emb = tf.feat_dict[torch_frame.embedding]
    assert (emb.num_rows, emb.num_cols, emb.values.shape[1]) == (n, 1, EMBED_DIM)
    # unit-norm sentence vectors
    assert torch.allclose(emb.values.norm(dim=1), torch.ones(n), atol=1e-4)
    # keys excluded; time column kept as a timestamp; a featureless table gets a constant
    summary = tokens.summary()
    assert summary["update"]["columns"] == {"numerical": ["type"], "timestamp": ["season"]}
    assert summary["bare table"]["columns"] == {"numerical": ["__const__"]}
    assert tokens["bare table"].frame.feat_dict[torch_frame.numerical].shape == (5, 1)
    assert summary["keys"]["n_rows"] == n


def test_nan_gets_indicator_not_silent_zero(tokens: TokenizedDatabase) -> None:
    tt = tokens["keys"]
    num = tt.frame.feat_dict[torch_frame.numerical]
    names = tt.frame.col_names_dict[torch_frame.numerical]
    value = num[:, names.index(_col(tokens, "keys", "update").name)]
    isna = num[:, names.index(_col(tokens, "keys", "update__isna").name)]
    assert isna[[2, 5]].tolist() == [1.0, 1.0] and isna.sum() == 2
    assert torch.isfinite(value).all() and value.abs().max() <= 5.0
    # robust standardization: the median sits at zero
    assert abs(float(value[isna == 0].median())) < 0.1
    # the column without NaN has no indicator; the timestamp with NaT has one
    labels = {c.label for c in tt.columns}
    assert "order__isna" not in labels and "born at__isna" in labels
    # missing category is an explicit category, not NA
    cats = tt.col_stats[_col(tokens, "keys", "prix.unité €").name]
    assert MISSING_CATEGORY in cats[next(iter(cats))][0]
    assert (tt.frame.feat_dict[torch_frame.categorical] >= 0).all()


def test_unseen_category_maps_to_na_and_encodes(tokens: TokenizedDatabase, cache_dir: Path) -> None:
    from t2g_lib.encoder import RowEncoder

    db, _ = odd_db()
    new = db.table_dict["keys"].df.head(4).copy()
    new["prix.unité €"] = ["a", "never seen", "b", "never seen either"]
    embedder = CachedTextEmbedder(cache_dir)
    tf = tokens["keys"].encode(new, embedder)
    cats = tf.feat_dict[torch_frame.categorical][:, 0].tolist()
    stats = tokens["keys"].col_stats[_col(tokens, "keys", "prix.unité €").name]
    fitted = next(iter(stats.values()))[0]  # categories in index order
    assert cats[1] == -1 and cats[3] == -1
    assert cats[0] == fitted.index("a") and cats[2] == fitted.index("b")
    assert embedder.n_model_calls == 0  # every text was cached by the fit
    enc = RowEncoder(tokens, dim=8)
    out = enc.embed(tokens.tables.index("keys"), tf)
    assert out.shape == (4, 8) and torch.isfinite(out).all()


def test_each_distinct_text_is_embedded_once(tmp_path: Path) -> None:
    texts = ["alpha", "beta", "alpha", "", "beta", "gamma", "alpha"] * 50
    first = CachedTextEmbedder(tmp_path)
    out = first(texts)
    assert out.shape == (len(texts), EMBED_DIM)
    assert first.n_embedded_strings == 4 and first.n_model_calls == 1
    assert torch.equal(out[0], out[2]) and not torch.equal(out[0], out[1])
    first(texts)
    assert first.n_embedded_strings == 4
    second = CachedTextEmbedder(tmp_path)
    again = second(list(reversed(texts)))
    assert second.n_embedded_strings == 0 and second.n_model_calls == 0 and second._model is None
    assert torch.equal(again.flip(0), out)


def test_tokenize_reports_and_reuses_cache(tokens: TokenizedDatabase, cache_dir: Path) -> None:
    s = tokens.summary()["keys"]
    assert s["n_text_distinct"] == 4  # three strings plus "" for missing
    assert s["n_embedded_now"] == 4
    db, types = odd_db()
    again = tokenize_database(db, types, cache_dir)
    assert again.summary()["keys"]["n_embedded_now"] == 0
    a = again["keys"].frame.feat_dict[torch_frame.embedding].values
    assert torch.equal(a, tokens["keys"].frame.feat_dict[torch_frame.embedding].values)


def test_save_load_roundtrip(tokens: TokenizedDatabase, tmp_path: Path) -> None:
    tokens.save(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [
        "table_0.pt",
        "table_1.pt",
        "table_2.pt",
        "tokens.json",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # weights_only load must not fall back
        loaded = TokenizedDatabase.load(tmp_path / "tok")
    assert loaded.tables == tokens.tables
    assert loaded.summary() == tokens.summary()
    for a, b in zip(loaded.table_tokens, tokens.table_tokens):
        for stype, feat in b.frame.feat_dict.items():
            x, y = a.frame.feat_dict[stype], feat
            if not isinstance(y, torch.Tensor):  # MultiEmbeddingTensor of text vectors
                x, y = x.values, y.values
            assert torch.equal(x, y)


def test_missing_semantic_type_is_an_error(cache_dir: Path) -> None:
    db, types = odd_db()
    del types["keys"]["order"]
    with pytest.raises(KeyError, match="order"):
        tokenize_database(db, types, cache_dir)


def test_a_text_column_beyond_the_model_budget_is_hashed(tmp_path: Path) -> None:
    from t2g_lib.text_hash import HASH_DIM, HASHING

    db, types = odd_db()
    tokens = tokenize_database(db, types, tmp_path, text_model_budget=2)  # 4 distinct strings > 2
    col = next(c for c in tokens["keys"].columns if c.source == "bio text")
    assert col.encoder == HASHING
    s = tokens.summary()["keys"]
    assert s["hashed"] == ["bio text"] and s["n_text_distinct"] == 0 and s["n_embedded_now"] == 0
    emb = tokens["keys"].frame.feat_dict[torch_frame.embedding].values
    assert emb.shape[-1] == HASH_DIM
    bio = db.table_dict["keys"].df["bio text"].fillna("")
    first = {t: emb[i] for i, t in reversed(list(enumerate(bio)))}
    for i, t in enumerate(bio):  # the same string, the same vector
        assert torch.equal(emb[i], first[t])
    again = tokens["keys"].encode(db.table_dict["keys"].df.iloc[:4])  # new rows encode as the fit did
    assert torch.equal(again.feat_dict[torch_frame.embedding].values, emb[:4])
    within = tokenize_database(db, types, tmp_path, text_model_budget=4)
    assert next(c for c in within["keys"].columns if c.source == "bio text").encoder != HASHING


def test_hashed_text_keeps_word_overlap_and_needs_no_fit() -> None:
    from t2g_lib.text_hash import HashedTextEmbedder

    texts = ["regular deposits sleep carefully", "regular deposits sleep quickly", "furious pinto beans haggle", ""]
    a = HashedTextEmbedder()(texts)
    alone = torch.cat([HashedTextEmbedder()([t]) for t in texts])
    assert torch.equal(a, alone)  # no fit: a string encodes the same whatever else is encoded with it
    assert not torch.equal(HashedTextEmbedder(seed=1)(texts), a)  # the seed picks the projection
    assert torch.allclose(a[:3].norm(dim=1), torch.ones(3)) and a[3].abs().sum() == 0
    assert (a[0] @ a[1]) > 0.5 > abs(float(a[0] @ a[2]))


def test_hashing_in_worker_processes_gives_the_same_vectors(monkeypatch) -> None:
    import psutil

    import t2g_lib.text_hash as text_hash

    texts = np.array([f"order {i} of {i % 7} regular deposits" for i in range(50)], dtype=object)
    monkeypatch.setattr(text_hash, "_CHUNK", 8)  # 7 chunks
    monkeypatch.setattr(text_hash, "hash_workers", lambda: 1)
    alone = text_hash.HashedTextEmbedder().encode_unique(texts)
    monkeypatch.setattr(text_hash, "hash_workers", lambda: 2)
    assert np.array_equal(text_hash.HashedTextEmbedder().encode_unique(texts), alone)
    left = [" ".join(c.cmdline()) for c in psutil.Process().children(recursive=True)]
    assert all("resource_tracker" in c for c in left), left  # the workers do not outlive the column


def test_the_schema_names_the_encoder_column_tokens_uses() -> None:
    from t2g_lib.schema import infer_schema, text_plan_markdown
    from t2g_lib.task_data import column_types
    from t2g_lib.text_hash import HASHING, SENTENCE_MODEL

    notes = pd.DataFrame({"id": np.arange(60), "note": [f"customer {i} asked about the late delivery" for i in range(60)]})
    db = Database({"notes": Table(notes, {}, "id", None)})
    schema = infer_schema(db)
    for budget, encoder in ((59, HASHING), (60, SENTENCE_MODEL)):
        assert f"| notes | note | 60 | {encoder} |" in text_plan_markdown(schema, budget)
        fitted = _fit_columns(db.table_dict["notes"], column_types(schema)["notes"], budget)
        assert [c.encoder for c in fitted if c.source == "note"] == [encoder]


def test_large_tables_tokens_move_to_scratch_files_unchanged(tokens: TokenizedDatabase, cache_dir: Path,
                                                            tmp_path: Path, monkeypatch) -> None:
    """Above ``SCRATCH_TABLE_BYTES`` a table's tokens leave the process's memory for a scratch
    file as soon as they are built (here every table's): same values, and they save and load."""
    import sys
    import tempfile

    import t2g_lib.tokens_at_scale as tokens_module

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/maps")
    from test_scratch import mapping_of

    monkeypatch.setattr(tokens_module, "SCRATCH_TABLE_BYTES", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    db, types = odd_db()
    said: list[str] = []
    moved = tokenize_database(db, types, cache_dir, progress=said.append)
    assert len(said) == len(db.table_dict) and said[0].startswith("bare table: 5 rows")
    for a, b in zip(moved.table_tokens, tokens.table_tokens):
        for stype, feat in b.frame.feat_dict.items():
            x, y = a.frame.feat_dict[stype], feat
            if not isinstance(y, torch.Tensor):
                x, y = x.values, y.values
            assert torch.equal(x, y)
            assert x.numel() == 0 or mapping_of(x).startswith(str(tmp_path))
    loaded = TokenizedDatabase.load(moved.save(tmp_path / "tok"))
    assert all(torch.equal(a.frame.feat_dict[s], b.frame.feat_dict[s])
               for a, b in zip(loaded.table_tokens, tokens.table_tokens) for s in b.frame.feat_dict
               if isinstance(b.frame.feat_dict[s], torch.Tensor))


def test_a_table_tokenized_in_chunks_equals_the_whole_table(tokens: TokenizedDatabase, tmp_path: Path,
                                                             monkeypatch) -> None:
    """Above ``TOKEN_CHUNK_ROWS`` a table is tokenized a chunk of rows at a time (column
    statistics fitted on every row first): the same tokens, statistics and text counts."""
    import t2g_lib.tokens_at_scale as tokens_module

    monkeypatch.setattr(tokens_module, "TOKEN_CHUNK_ROWS", 7)  # 40 and 120 rows: uneven chunks
    db, types = odd_db()
    chunked = tokenize_database(db, types, tmp_path)  # a cold text cache, as the fixture's was
    assert chunked.summary() == tokens.summary()
    for a, b in zip(chunked.table_tokens, tokens.table_tokens):
        assert a.col_stats.keys() == b.col_stats.keys()
        for col, stats in b.col_stats.items():
            assert a.col_stats[col].keys() == stats.keys()
            for kind, value in stats.items():
                other = a.col_stats[col][kind]
                assert torch.equal(other, value) if isinstance(value, torch.Tensor) else other == value, (col, kind)
        assert a.frame.col_names_dict == b.frame.col_names_dict
        for stype, feat in b.frame.feat_dict.items():
            x, y = a.frame.feat_dict[stype], feat
            if not isinstance(y, torch.Tensor):  # the text vectors
                assert x.num_rows == y.num_rows and torch.equal(x.offset, y.offset)
                x, y = x.values, y.values
            assert torch.equal(x, y), stype
