"""Semantic type inference, schema serialization and rendering, with hostile names."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from relbench.base import Database, Table

from t2g_lib.schema import (
    DatabaseSchema,
    SemanticType,
    infer_schema,
    schema_markdown,
    schema_mermaid,
)

USERS = "user accounts.v2"
ORDERS = "order"
REVIEWS = "Bewertungen ü"

WORDS = ["fast", "slow", "great", "poor", "value", "quality", "shipping", "box", "colour", "size"]


def _sentence(i: int) -> str:
    rng = np.random.default_rng(i)
    return f"review {i}: " + " ".join(rng.choice(WORDS, size=6))


@pytest.fixture(scope="module")
def db() -> Database:
    n_users, n_orders = 120, 300
    rng = np.random.default_rng(0)
    users = pd.DataFrame(
        {
            "keys": np.arange(n_users),
            "signup time": pd.date_range("2020-01-01", periods=n_users, freq="D"),
            "login_code": [f"U{i:06d}" for i in range(n_users)],  # id-like: categorical
            "country": rng.choice(["de", "fr", "us"], n_users),
            "is active": rng.random(n_users) > 0.5,
            "stars": rng.integers(1, 6, n_users),  # few integral values: categorical
            "age": rng.integers(18, 90, n_users),  # many integral values: numerical
            "balance": rng.normal(size=n_users),
            "bio": [_sentence(i) for i in range(n_users)],
            "last seen": pd.date_range("2021-01-01", periods=n_users, freq="h", tz="UTC"),
            "birthday": [f"19{50 + i % 40}-0{1 + i % 9}-1{i % 10}" for i in range(n_users)],
        }
    )
    orders = pd.DataFrame(
        {
            "type": np.arange(n_orders),
            "user.id": rng.integers(0, n_users, n_orders),
            "time": pd.date_range("2022-01-01", periods=n_orders, freq="h"),
            "amount €": rng.gamma(2.0, 10.0, n_orders),
        }
    )
    reviews = pd.DataFrame(
        {
            "ключ": np.arange(40),
            "order": rng.integers(0, n_orders, 40).astype(float),
            "text": [_sentence(1000 + i) for i in range(40)],
        }
    )
    reviews.loc[3, "order"] = np.nan
    return Database(
        {
            USERS: Table(users, {}, "keys", "signup time"),
            ORDERS: Table(orders, {"user.id": USERS}, "type", "time"),
            REVIEWS: Table(reviews, {"order": ORDERS}, "ключ", None),
        }
    )


@pytest.fixture(scope="module")
def schema(db: Database) -> DatabaseSchema:
    return infer_schema(db)


def _stypes(schema: DatabaseSchema, table: str) -> dict[str, SemanticType]:
    return {c.name: c.stype for c in schema.tables[table].columns}


def test_each_semantic_type_is_detected(schema: DatabaseSchema) -> None:
    assert _stypes(schema, USERS) == {
        "keys": SemanticType.KEY,
        "signup time": SemanticType.TIMESTAMP,
        "login_code": SemanticType.CATEGORICAL,
        "country": SemanticType.CATEGORICAL,
        "is active": SemanticType.CATEGORICAL,
        "stars": SemanticType.CATEGORICAL,
        "age": SemanticType.NUMERICAL,
        "balance": SemanticType.NUMERICAL,
        "bio": SemanticType.TEXT,
        "last seen": SemanticType.TIMESTAMP,
        "birthday": SemanticType.TIMESTAMP,
    }
    assert _stypes(schema, ORDERS) == {
        "type": SemanticType.KEY,
        "user.id": SemanticType.KEY,
        "time": SemanticType.TIMESTAMP,
        "amount €": SemanticType.NUMERICAL,
    }
    # 40 rows hold fewer distinct strings than text needs: repetitive strings are categories
    assert _stypes(schema, REVIEWS)["text"] == SemanticType.CATEGORICAL


def test_column_statistics_and_keys(schema: DatabaseSchema) -> None:
    reviews = schema.tables[REVIEWS]
    assert reviews.n_rows == 40
    assert reviews.pkey == "ключ" and reviews.time_col is None
    assert reviews.fkeys == {"order": ORDERS}
    order_col = next(c for c in reviews.columns if c.name == "order")
    assert order_col.n_null == 1 and order_col.dtype == "float64"
    assert schema.tables[USERS].columns_of(SemanticType.TEXT) == ["bio"]


def test_text_needs_many_distinct_multiword_values() -> None:
    n = 500
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "comment": [_sentence(i) for i in range(n)],
            "team": [f"New York Team {i % 5}" for i in range(n)],  # multi-word, 5 values
            "uuid": [f"{i:08x}-1234-5678-9abc-def012345678" for i in range(n)],  # long, 1 token
        }
    )
    stypes = _stypes(infer_schema(Database({"t": Table(df, {}, "id")})), "t")
    assert stypes["comment"] == SemanticType.TEXT
    assert stypes["team"] == SemanticType.CATEGORICAL
    assert stypes["uuid"] == SemanticType.CATEGORICAL


def test_only_declared_keys_are_keys() -> None:
    df = pd.DataFrame({"user_id": np.arange(100), "x": np.linspace(0, 1, 100)})
    stypes = _stypes(infer_schema(Database({"t": Table(df, {})})), "t")
    assert stypes == {"user_id": SemanticType.NUMERICAL, "x": SemanticType.NUMERICAL}


def test_relations_are_sorted(schema: DatabaseSchema) -> None:
    assert schema.relations() == [
        (REVIEWS, "order", ORDERS),
        (ORDERS, "user.id", USERS),
    ]


def test_round_trip_through_json_keeps_names(schema: DatabaseSchema) -> None:
    text = json.dumps(schema.to_dict(), ensure_ascii=False)
    restored = DatabaseSchema.from_dict(json.loads(text))
    assert restored == schema
    assert list(restored.tables) == [USERS, ORDERS, REVIEWS]
    assert restored.tables[ORDERS].fkeys == {"user.id": USERS}
    assert [c.name for c in restored.tables[REVIEWS].columns] == ["ключ", "order", "text"]
    assert isinstance(restored.tables[USERS].columns[0].stype, SemanticType)


MERMAID_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def test_mermaid_uses_safe_identifiers_and_readable_labels(schema: DatabaseSchema) -> None:
    text = schema_mermaid(schema)
    lines = text.splitlines()
    assert lines[0] == "erDiagram"
    entities = re.findall(r'^    (t\d+_\w*)\["([^"]*)"\] \{$', text, flags=re.M)
    assert [label for _, label in entities] == [USERS, ORDERS, REVIEWS]
    ids = {label: ident for ident, label in entities}
    assert all(re.fullmatch(MERMAID_IDENT, ident, flags=re.ASCII) for ident in ids.values())
    attributes = [line.strip() for line in lines if line.startswith("        ")]
    for attr in attributes:
        stype, name = attr.split(" ")[:2]
        assert stype in {t.value for t in SemanticType}
        assert re.fullmatch(MERMAID_IDENT, name, flags=re.ASCII), attr
    assert 'key user_id FK "user.id"' in attributes
    assert 'key column_0 PK "ключ"' in attributes
    assert "key type PK" in attributes
    assert f'    {ids[USERS]} ||--o{{ {ids[ORDERS]} : "user.id"' in lines
    assert f'    {ids[ORDERS]} ||--o{{ {ids[REVIEWS]} : "order"' in lines


def test_mermaid_escapes_quotes_and_key_words() -> None:
    df = pd.DataFrame({'say "hi"': [1.5], "PK": [2.5]})
    text = schema_mermaid(infer_schema(Database({'a "b"': Table(df, {})})))
    assert '    t0_a__b_["a \'b\'"] {' in text
    assert "        numerical say__hi_ \"say 'hi'\"" in text
    assert '        numerical PK_ "PK"' in text


def test_markdown_lists_tables_keys_and_typed_columns(schema: DatabaseSchema) -> None:
    text = schema_markdown(schema)
    lines = text.splitlines()
    assert lines[0].startswith("| table | rows | primary key | time column | foreign keys |")
    assert len(lines) == 2 + 3
    orders = lines[3].split(" | ")
    assert orders[0] == "| order" and orders[1] == "300" and orders[2] == "type"
    assert orders[4] == r"user.id → user accounts.v2"
    assert r"login\_code" in lines[2] and "Bewertungen ü" in lines[4]
    pipes = schema_markdown(infer_schema(Database({"a|b": Table(pd.DataFrame({"x": [1]}), {})})))
    assert r"| a\|b | 1 |" in pipes
