"""`export_release` on a real lakeFS server: a release made by the pipeline (simulated logs →
ingest → curate → release) exported in every format is exactly the release's mart rows, read
at the release's commit id, loads with `datasets`, trains with TRL's own trainers, and an
export by the recorded commit id stays the same after the tag moves."""

import hashlib
import json
from datetime import date, timedelta

import dagster as dg
import pytest
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource
from settings_env import settings_env

from assets.curation import CURATION_ASSETS
from assets.ingestion import raw_agent_logs
from assets.redaction import redacted_trajectories
from assets.release import dataset_release
from pipeline.core.export_formats import EXPECTED_CALL_ID, FORMATS
from pipeline.orchestration.resources import LakeFSResource, dbt_project, venv_tool
from pipeline.shell.export import DATA_CARD_FILES, UnknownRelease, export_release
from pipeline.shell.marts import parquet_bytes, read_parquet
from pipeline.shell.release import publish, read_release_file
from pipeline.simulator import simulate

START = date(2026, 11, 16)
DAYS = [str(START + timedelta(days=i)) for i in range(2)]
DATASETS_REPO = "datasets-export-test"


@pytest.fixture(scope="module")
def released(lakefs_server, tmp_path_factory):
    """One pipeline run to a published release: (repository, tag, release metadata)."""
    root = tmp_path_factory.mktemp("export")
    simulate(days=len(DAYS), per_day=120, out_dir=root, seed=5, start_date=START)
    db_path = root / "warehouse.duckdb"
    env = {"FLYWHEEL_LANDING_DIR": str(root / "landing"), "FLYWHEEL_DUCKDB_PATH": str(db_path),
           "FLYWHEEL_RAW_REPO": "raw-export-test", "FLYWHEEL_DATASETS_REPO": DATASETS_REPO}
    with settings_env(env):
        lakefs = LakeFSResource(endpoint=lakefs_server.endpoint)
        duckdb = DuckDBResource(database=str(db_path))
        for day in DAYS:
            assert dg.materialize([raw_agent_logs, redacted_trajectories], partition_key=day,
                                  resources={"lakefs": lakefs, "duckdb": duckdb}).success
        dbt = DbtCliResource(project_dir=dbt_project, dbt_executable=venv_tool("dbt"))
        result = dg.materialize([*CURATION_ASSETS, dataset_release],
                                resources={"lakefs": lakefs, "dbt": dbt, "duckdb": duckdb})
        [event] = [e for e in result.get_asset_materialization_events()
                   if e.step_materialization_data.materialization.asset_key == dataset_release.key]
        metadata = {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
        yield lakefs_server.repository(DATASETS_REPO), metadata["tag"], metadata


def _lines(path):
    return [json.loads(line) for line in path.read_bytes().decode().splitlines()]


def _no_nulls(messages):
    return [{k: v for k, v in m.items() if v is not None} for m in json.loads(messages)]


def _from_openai(messages):
    """OpenAI messages back in the marts' shape (argument objects, no weights)."""
    out = []
    for m in messages:
        m = {k: v for k, v in m.items() if k != "weight"}
        if "tool_calls" in m:
            m["tool_calls"] = [{**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
                               for c in m["tool_calls"]]
        out.append(m)
    return out


def _expected_turn(case):
    if case["expected_kind"] == "tool_call":
        call = json.loads(case["expected_tool_call"])
        return {"role": "assistant", "tool_calls": [{"id": EXPECTED_CALL_ID, "type": "function", "function": call}]}
    return {"role": "assistant", "content": case["expected_answer"]}


def _check_row(fmt, suffix, line, row):
    """One exported line against its mart row: the same conversation, tools and label."""
    tools = json.loads(row["tools"])
    if fmt == "openai":
        weights = [m.get("weight") for m in line["messages"] if m["role"] == "assistant"]
        messages = _from_openai(line["messages"])
        if suffix == "train":
            assert messages == _no_nulls(row["messages"]) and set(weights) == {None}
        else:
            assert messages == [*_no_nulls(row["prompt"]), _expected_turn(row)]
            assert weights == [0] * (len(weights) - 1) + [1]
        assert line["tools"] == tools
        return
    expected = {
        ("trl-sft", "train"): lambda: {"messages": _no_nulls(row["messages"]), "tools": tools},
        ("trl-sft", "eval"): lambda: {"prompt": _no_nulls(row["prompt"]), "completion": [_expected_turn(row)],
                                      "tools": tools},
        ("trl-dpo", "train"): lambda: {"prompt": _no_nulls(row["prompt"]), "chosen": _no_nulls(row["chosen"]),
                                       "rejected": _no_nulls(row["rejected"]), "tools": tools},
        ("trl-kto", "train"): lambda: {"prompt": _no_nulls(row["prompt"]), "completion": _no_nulls(row["completion"]),
                                       "label": bool(row["label"]), "tools": tools},
    }[(fmt, suffix)]()
    assert line == expected


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_an_export_is_the_release_rows_read_at_its_commit(released, fmt, tmp_path):
    from datasets import load_dataset

    repo, tag, metadata = released
    commit = metadata["lakefs_merge_commit"]
    manifest = export_release(repo, tag, fmt, tmp_path)

    assert (manifest.release, manifest.commit_id, manifest.format) == (tag, commit, fmt)
    assert manifest.content_digest == metadata["content_digest"]
    assert json.loads((tmp_path / f"{fmt}-manifest.json").read_bytes()) == json.loads(manifest.to_json())
    exported = {f.name: f for f in manifest.files}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*exported, f"{fmt}-manifest.json"])
    for f in manifest.files:
        assert f.sha256 == hashlib.sha256((tmp_path / f.name).read_bytes()).hexdigest(), f.name
        assert f.source.startswith(f"lakefs://{DATASETS_REPO}/{commit}/datasets/")
    for name in DATA_CARD_FILES:
        assert (tmp_path / name).read_bytes() == read_release_file(repo, commit, name)
    assert json.loads((tmp_path / "data_card.json").read_bytes())["verdict"] == "passed"

    for suffix, mart, _ in FORMATS[fmt]:
        name = f"{fmt}-{suffix}.jsonl"
        frame = read_parquet(read_release_file(repo, commit, f"{mart}.parquet"))
        lines = _lines(tmp_path / name)
        assert len(lines) == len(frame) == exported[name].rows > 0, name
        for line, row in zip(lines, frame.to_dict("records")):
            _check_row(fmt, suffix, line, row)
        loaded = load_dataset("json", data_files=str(tmp_path / name), split="train")
        assert [dict(r) for r in loaded] == lines, f"{name} does not load unchanged with datasets"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A tiny random model with SmolLM2's tokenizer; the tokenizer saved with the project's
    chat template (tools and tool calls), which TRL applies."""
    pytest.importorskip("trl")
    from pipeline.learning import base_model
    from pipeline.learning.tokenizer import load_tokenizer

    try:
        model_dir = base_model.tiny_model_dir(tmp_path_factory.mktemp("models"))
    except FileNotFoundError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(str(exc))
    load_tokenizer(model_dir).save_pretrained(model_dir)
    return model_dir


def test_trl_trainers_take_the_exports(released, tokenizer_dir, tmp_path):
    """TRL's SFT, DPO and KTO trainers prepare the exported files as `datasets` loads them
    (chat template with tools, labels) without dropping a row, and the SFT records render to
    exactly the tokens of the mart rows they came from. (No training step: a forward pass
    over ~2,000 tokens and a 49k vocabulary costs 10-40 s per trainer on a small CPU.)"""
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, SFTConfig, SFTTrainer

    repo, tag, metadata = released
    for fmt in ("trl-sft", "trl-dpo", "trl-kto"):
        export_release(repo, tag, fmt, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    sft = read_parquet(read_release_file(repo, metadata["lakefs_merge_commit"], "sft_examples.parquet"))
    for line, row in zip(_lines(tmp_path / "trl-sft-train.jsonl")[:8], sft.to_dict("records")):
        assert (tokenizer.apply_chat_template(line["messages"], tools=line["tools"])
                == tokenizer.apply_chat_template(json.loads(row["messages"]), tools=json.loads(row["tools"])))

    def data(name, rows):
        dataset = load_dataset("json", data_files=str(tmp_path / name), split="train")
        return dataset.select([i for i in rows if i < len(dataset)])

    cases = _lines(tmp_path / "trl-sft-eval.jsonl")
    by_kind = {kind: [i for i, c in enumerate(cases) if kind in c["completion"][0]][:2]
               for kind in ("tool_calls", "content")}
    assert all(by_kind.values()), "the eval file has both kinds of reference turn"
    common = {"per_device_train_batch_size": 2, "report_to": "none", "use_cpu": True, "max_length": 4096,
              "activation_checkpointing": False}
    sft_trainer = SFTTrainer(
        model=str(tokenizer_dir), processing_class=tokenizer, train_dataset=data("trl-sft-train.jsonl", range(4)),
        eval_dataset=data("trl-sft-eval.jsonl", [*by_kind["tool_calls"], *by_kind["content"]]),
        args=SFTConfig(output_dir=str(tmp_path / "sft"), assistant_only_loss=True, **common))
    dpo_trainer = DPOTrainer(model=str(tokenizer_dir), processing_class=tokenizer,
                             train_dataset=data("trl-dpo-train.jsonl", range(4)),
                             args=DPOConfig(output_dir=str(tmp_path / "dpo"), **common))
    kto_trainer = KTOTrainer(model=str(tokenizer_dir), processing_class=tokenizer,
                             train_dataset=data("trl-kto-train.jsonl", range(8)),
                             args=KTOConfig(output_dir=str(tmp_path / "kto"), **common))

    def trained_text(row):
        return tokenizer.decode([t for t in row["labels"] if t != -100])

    assert len(sft_trainer.train_dataset) == 4, "no example is left without assistant tokens"
    for row in sft_trainer.train_dataset:
        text = trained_text(row)
        for message in row["messages"]:
            if message["role"] == "assistant":
                assert (message.get("content") or "") in text
                for call in message.get("tool_calls") or []:
                    assert json.dumps(call["function"]["arguments"], ensure_ascii=False) in text
    assert len(sft_trainer.eval_dataset) == 4
    for row in sft_trainer.eval_dataset:
        [turn] = row["completion"]
        expected = turn.get("content") or turn["tool_calls"][0]["function"]["name"]
        assert expected in trained_text(row).rsplit("<|im_end|>", 2)[-2], "the reference turn is scored"
    assert len(dpo_trainer.train_dataset) == min(4, len(_lines(tmp_path / "trl-dpo-train.jsonl")))
    assert all(r["prompt_ids"] and r["chosen_ids"] and r["rejected_ids"] for r in dpo_trainer.train_dataset)
    assert len(kto_trainer.train_dataset) == 8
    assert all(r["prompt_ids"] and r["completion_ids"] for r in kto_trainer.train_dataset)


def test_an_export_by_the_recorded_commit_id_survives_a_moved_tag(released, tmp_path):
    repo, tag, metadata = released
    moving = repo.tag("dataset-export-moving-1").create(metadata["lakefs_merge_commit"])
    first = export_release(repo, moving.id, "trl-sft", tmp_path / "first")

    # A later release (one SFT example fewer), and the tag moved onto it.
    commit = first.commit_id
    files = {name: read_release_file(repo, commit, name)
             for name in ("sft_examples.parquet", "eval_cases.parquet", *DATA_CARD_FILES)}
    files["sft_examples.parquet"] = parquet_bytes(read_parquet(files["sft_examples.parquet"]).iloc[1:])
    later = publish(repo, files, run_id="export-moved-tag", day="2026-12-01",
                    verdict={"verdict": "passed", "reasons": []}, metadata={})
    moving.delete()
    repo.tag("dataset-export-moving-1").create(later.merge_commit_id)

    by_tag = export_release(repo, "dataset-export-moving-1", "trl-sft", tmp_path / "by-tag")
    by_commit = export_release(repo, first.commit_id, "trl-sft", tmp_path / "by-commit")
    assert by_tag.commit_id == later.merge_commit_id != first.commit_id
    assert by_tag.files[0].rows == first.files[0].rows - 1
    assert by_commit.commit_id == first.commit_id and by_commit.release == first.commit_id
    assert [(f.name, f.rows, f.sha256) for f in by_commit.files] == [(f.name, f.rows, f.sha256) for f in first.files]


def test_what_cannot_be_exported_is_refused_with_its_name(released, tmp_path):
    repo, tag, _ = released
    with pytest.raises(UnknownRelease, match="'dataset-1999-01-01-1'.*datasets-export-test.*dataset-"):
        export_release(repo, "dataset-1999-01-01-1", "trl-sft", tmp_path)
    not_a_release = next(c for c in repo.ref("main").log() if "content_digest" not in (c.metadata or {}))
    with pytest.raises(UnknownRelease, match="not a published dataset release"):
        export_release(repo, not_a_release.id, "openai", tmp_path)
    with pytest.raises(ValueError, match="unknown export format 'alpaca'; known formats: trl-sft, trl-dpo"):
        export_release(repo, tag, "alpaca", tmp_path)
    assert not list(tmp_path.iterdir()), "nothing written"

    (tmp_path / "openai-manifest.json").write_text(json.dumps({"commit_id": "0" * 64}))
    with pytest.raises(ValueError, match="holds an export of another release"):
        export_release(repo, tag, "trl-sft", tmp_path)
