"""`recsys recommend` on an export, in process and through a server."""

import json
import socket
import time

import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.orchestrate.cli import main
from serving.recommend import (
    connect,
    format_recommendations,
    item_titles,
    outside_catalog,
    recommend,
)
from tests.serving.fake_tf_serving import canned_rest_server, trickling_server


def _config_file(config, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()), encoding="utf-8")
    return str(path)


def test_recommend_in_process_gives_titles_and_explanations(exported):
    config, path = exported
    backend = connect(config)
    assert backend.path == path
    titles = item_titles(config)
    history = list(titles)[:3]
    results = recommend(backend, config, "someone", history, k=4, mmr_lambda=0.5)
    assert len(results) == 4 and len({r["item_id"] for r in results}) == 4
    assert all(r["because"] in history for r in results)
    text = format_recommendations(results, titles)
    assert titles[results[0]["item_id"]] in text and "because you viewed" in text


def test_the_cli_prints_recommendations(exported, tmp_path, capsys):
    config, _ = exported
    titles = item_titles(config)
    first = next(iter(titles))
    argv = ["recommend", "--config", _config_file(config, tmp_path), "--user", "u"]
    assert main([*argv, "--history", first, "--k", "3", "--diversity", "0.2"]) == 0
    out = capsys.readouterr().out
    assert out.count("because you viewed") == 3 and titles[first] in out
    assert main([*argv, "--diversity", "1.5"]) == 2
    assert "--diversity" in capsys.readouterr().err
    assert main([*argv, "--k", "500"]) == 2  # the model refuses k above serving.max_k
    assert "k must be in" in capsys.readouterr().err


def test_history_ids_outside_the_catalog_are_named_and_explain_nothing(exported, tmp_path, capsys):
    config, _ = exported
    backend = connect(config)
    titles = item_titles(config)
    first = next(iter(titles))
    assert backend.catalog_ids() == set(titles)
    assert outside_catalog(backend, [first, "zzz", "", "zzz", "yy"], titles) == ["zzz", "yy"]
    results = recommend(backend, config, "someone", [first, "zzz"], k=5, mmr_lambda=0.5)
    assert [r["because"] for r in results] == [first] * 5
    results = recommend(backend, config, "someone", ["zzz", "yy"], k=5, mmr_lambda=0.5)
    assert len(results) == 5 and not any(r["because"] for r in results)
    assert [r["because_similarity"] for r in results] == [0.0] * 5
    argv = ["recommend", "--config", _config_file(config, tmp_path), "--user", "u"]
    assert main([*argv, "--history", f"{first},zzz,yy", "--k", "3"]) == 0
    captured = capsys.readouterr()
    assert "not in the catalog: zzz, yy" in captured.err
    assert captured.out.count(f"because you viewed {titles[first]} [{first}]") == 3


class _NoTextModel:
    """What `connect` gives for an export whose manifest says it has no text encoder."""

    text_queries = False

    def predict(self, *args, **kwargs):
        raise AssertionError("a refused query reached the model")


def test_a_query_to_a_model_without_a_text_encoder_is_refused(exported):
    config, _ = exported
    assert connect(config).text_queries is True  # from the export's manifest
    with pytest.raises(ConfigError, match=r"no text encoder .* --query cannot be used"):
        recommend(_NoTextModel(), config, "u", query="a warm winter coat")


def _unused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _recommend_via(server: str, tmp_path, *flags: str) -> list[str]:
    return ["recommend", "--set", f"work_dir={tmp_path}", "--server", server, *flags]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--user", "u", "--timeout", "-1"],
            "--timeout must be a positive number of seconds (got -1.0)",
        ),
        (["--user", "u", "--timeout", "nan"], "--timeout must be a positive number of seconds"),
        (["--user", "caf\udce9"], "--user must be UTF-8 text (got 'caf\\udce9')"),
        (["--user", "u", "--history", "i1,\udcff"], "--history must be UTF-8 text"),
    ],
)
def test_bad_recommend_arguments_are_one_line_and_exit_2(flags, message, tmp_path, capsys):
    assert main(_recommend_via(_unused_url(), tmp_path, *flags)) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"recsys recommend: error: {message}")


def test_a_wrongly_typed_reply_is_one_line_and_exit_2(tmp_path, capsys):
    row = {
        "item_ids": ["i1"],
        "scores": ["high"],
        "relevance": [1.0],
        "explanation_item_ids": [""],
        "explanation_scores": [0.0],
    }
    with canned_rest_server(json.dumps({"predictions": [row]}).encode()) as url:
        assert main(_recommend_via(url, tmp_path, "--user", "u")) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"recsys recommend: error: POST {url}/v1/models/recommender:predict failed: the reply "
        "does not fit signature 'serving_default': output 'scores' must hold float32 values "
        "(got [['high']])"
    ]


def test_a_trickling_server_fails_at_the_timeout(tmp_path, capsys):
    with trickling_server(interval=0.05, duration=3) as url:
        started = time.monotonic()
        status = main(_recommend_via(url, tmp_path, "--user", "u", "--timeout", "1"))
        elapsed = time.monotonic() - started

    assert status == 2 and elapsed < 1.5
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"recsys recommend: error: POST {url}/v1/models/recommender:predict failed: deadline "
        "exceeded: no complete reply within the 1 s timeout"
    ]
