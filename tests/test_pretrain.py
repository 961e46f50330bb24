"""The student's one-time pre-training on the expression language: what it trains on, its cache
(reproducible, trusted only when complete, restarted after a kill) and how a table's student
starts from it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from featteam.errors import FeatteamError
from featteam.expr import check_structure, split_features
from featteam.models.pretrain import COMPLETE_MARKER, PRETRAIN_FEATURES, PretrainConfig, generic_batch


def test_generic_batches_are_valid_transformations_of_their_width_and_reproducible():
    config = PretrainConfig(batch_size=6)
    first = generic_batch(np.random.default_rng(3), config)
    rng = np.random.default_rng(3)
    batches = [generic_batch(rng, config) for _ in range(40)]
    assert batches[0] == first  # the same seed draws the same tables and sequences
    widths = set()
    for task, target, width, sequences in batches:
        assert task in ("classification", "regression") and target
        assert config.min_features <= width <= config.max_features
        widths.add(width)
        assert len(sequences) == config.batch_size
        for tokens in sequences:
            check_structure(tokens, width)
            # Never constant: the values were checked on a random table of this width.
            for feature in split_features(tokens):
                assert feature[-1] not in ("-", "/") or feature[:len(feature) // 2] != feature[len(feature) // 2:-1]
    assert min(widths) < 8 and max(widths) > 24  # narrow and wide tables both seen
    # About a quarter of the sequences write a feature that starts as an earlier one and goes on,
    # so the prefix shape's repeat flag is on where a valid sequence must not close the feature.
    sequences = [tokens for batch in batches for tokens in batch[3]]
    extended = [tokens for tokens in sequences if any(
        later[:len(earlier)] == earlier for i, earlier in enumerate(split_features(tokens))
        for later in split_features(tokens)[i + 1:])]
    assert 0.15 < len(extended) / len(sequences) < 0.4


@pytest.mark.parametrize("bad", [{"steps": 0}, {"lr": 0.0}, {"min_features": 5, "max_features": 4},
                                 {"max_features": PRETRAIN_FEATURES + 1}])
def test_pretrain_config_refuses_bad_values(bad):
    with pytest.raises(FeatteamError):
        PretrainConfig(**bad)


def test_the_shipped_state_is_the_one_the_code_would_train_now(tmp_path):
    """featteam ships the embedded model's pre-training for the default student.  Its folder name
    is the cache's name for it (the GGUF's content, the schema and every setting), so a change to
    the pre-training's schema, its defaults or the embedded model fails here until the state is
    trained again and shipped (``featteam prepare --ship``, docs/architecture.md).  A change to
    what the pre-training computes must bump its schema for this test to see it."""
    import json

    safetensors = pytest.importorskip("safetensors.numpy")
    from featteam.expr import Vocabulary
    from featteam.llm.local import CONVERSION_RECORD, converted_name, default_gguf
    from featteam.models.pretrain import PRETRAIN_SCHEMA, SHIPPED_FILES, SHIPPED_STATES, shipped_dir
    from featteam.models.student import StudentConfig

    # The embedded model's conversion as this machine would write it (its record, no weights: the
    # name is all the lookup reads), anywhere: its name is the same on every machine.
    model = tmp_path / converted_name(default_gguf())
    model.mkdir()
    (model / CONVERSION_RECORD).write_text(json.dumps({"gguf": default_gguf().name, "name": model.name}))
    config = PretrainConfig.for_student(StudentConfig())
    shipped = shipped_dir(model, config)
    assert sorted(SHIPPED_STATES.iterdir()) == [shipped]  # the one a fit looks for, and no stale one beside it
    meta = json.loads((shipped / COMPLETE_MARKER).read_text())
    assert meta["schema"] == PRETRAIN_SCHEMA and meta["config"] == dataclasses.asdict(config)
    assert len(meta["loss_curve"]) == config.steps and meta["metrics"]["steps"] == config.steps
    assert sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*") if p.is_file()) == sorted(SHIPPED_FILES)
    tables = safetensors.load_file(str(shipped / "expression_tokens.safetensors"))
    assert tables["token_embeddings"].shape[0] == len(Vocabulary(PRETRAIN_FEATURES))
    assert all(np.isfinite(table).all() for table in tables.values())
    adapter = json.loads((shipped / "adapter" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (config.lora_r, config.lora_alpha)
    assert adapter["base_model_name_or_path"] == model.name  # no path of the machine that trained it


@pytest.mark.parametrize("record", [None, "not json", "[1, 2]", '{"name": "elsewhere-0123456789ab"}'])
def test_only_a_recorded_conversion_is_named_by_its_name(tmp_path, record):
    """A conversion (its record names its folder) is the same model wherever it lies; any other
    folder - no record, a broken one, one naming another folder - is named by its path and files."""
    import json

    from featteam.llm.local import CONVERSION_RECORD, is_conversion
    from featteam.models.pretrain import state_name

    config = PretrainConfig()
    names = []
    for parent in ("a", "b"):
        model = tmp_path / parent / "model-0123456789ab"
        model.mkdir(parents=True)
        (model / "config.json").write_text("{}")
        if record is not None:
            (model / CONVERSION_RECORD).write_text(record)
        names.append(state_name(model, config))
    good = json.dumps({"gguf": "model.gguf", "name": "model-0123456789ab"})
    (tmp_path / "c" / "model-0123456789ab").mkdir(parents=True)
    (tmp_path / "c" / "model-0123456789ab" / CONVERSION_RECORD).write_text(good)
    assert is_conversion(tmp_path / "c" / "model-0123456789ab")
    assert not is_conversion(tmp_path / "a" / "model-0123456789ab")
    assert names[0] != names[1]  # two folders of the same name hold different models, as far as we know
    assert all(name.startswith("model-0123456789ab-") for name in names)


# -- with the real model --------------------------------------------------------------------

TINY = PretrainConfig(steps=2, batch_size=2)


@pytest.fixture(scope="module")
def model_dir():
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from featteam.llm.local import resolve_model_dir

    return str(resolve_model_dir(None))  # converted once in the user's cache, as every slow test uses it


def _tensors(directory):
    from safetensors.torch import load_file

    return load_file(f"{directory}/expression_tokens.safetensors")


@pytest.mark.slow
def test_pretraining_is_cached_reproducible_and_never_trusts_a_half_written_state(model_dir, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("FEATTEAM_CACHE_DIR", str(tmp_path / "a"))
    from featteam.models.pretrain import ensure_pretrained
    from featteam.models.student import Student

    # Trained on one thread whoever asks (`featteam prepare` or a fit), torch's count given back.
    threads, batch_loss = [], Student._batch_loss
    monkeypatch.setattr(Student, "_batch_loss",
                        lambda self, *a: threads.append(torch.get_num_threads()) or batch_loss(self, *a))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        trained = ensure_pretrained(model_dir, TINY)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert threads == [1, 1]
    assert not trained.loaded_from_cache and trained.steps == 2 and trained.disk_bytes > 0
    target = tmp_path / "a" / "students" / trained.directory.split("/")[-1]
    assert (target / COMPLETE_MARKER).exists()
    assert sorted(p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")) == [target.name]
    again = ensure_pretrained(model_dir, TINY)
    assert again.loaded_from_cache and again.directory == trained.directory and again.seconds == trained.seconds

    # The same seed in another cache gives the same tensors.
    monkeypatch.setenv("FEATTEAM_CACHE_DIR", str(tmp_path / "b"))
    other = ensure_pretrained(model_dir, TINY)
    reference = _tensors(trained.directory)
    for name, tensor in _tensors(other.directory).items():
        assert torch.equal(tensor, reference[name]), name

    # A run killed while writing leaves a .partial folder (and maybe a folder without its marker):
    # neither is trusted, both are replaced by a complete state.
    stale = tmp_path / "b" / "students" / (other.directory.split("/")[-1] + ".partial")
    stale.mkdir()
    (stale / "expression_tokens.safetensors").write_text("cut short by a kill")
    (stale / "junk").write_text("left by the killed run")
    (tmp_path / "b" / "students" / other.directory.split("/")[-1] / COMPLETE_MARKER).unlink()
    redone = ensure_pretrained(model_dir, TINY)
    assert not redone.loaded_from_cache and not stale.exists()
    assert not (tmp_path / "b" / "students" / other.directory.split("/")[-1] / "junk").exists()
    for name, tensor in _tensors(redone.directory).items():
        assert torch.equal(tensor, reference[name]), name


@pytest.mark.slow
def test_a_student_starts_from_the_pretrained_state_at_any_width(model_dir, tmp_path, monkeypatch):
    import torch

    from featteam.expr import Grammar, Vocabulary
    from featteam.models.pretrain import ensure_pretrained
    from featteam.models.student import Student, StudentConfig, student_prompt

    monkeypatch.setenv("FEATTEAM_CACHE_DIR", str(tmp_path))
    state = ensure_pretrained(model_dir, TINY)
    trained = _tensors(state.directory)
    for width in (3, PRETRAIN_FEATURES + 5):
        student = Student(Vocabulary(width), student_prompt("regression", "y", width),
                          StudentConfig(base_model=model_dir))
        text_rows = student.token_embeddings.detach().clone()
        student.start_from(state.directory)
        rows = student.token_embeddings.detach()
        kept = min(len(student.vocab), trained["token_embeddings"].shape[0])
        assert torch.equal(rows[:kept], trained["token_embeddings"][:kept])
        if width > PRETRAIN_FEATURES:  # untrained features: their text's row plus the trained rows' mean shift
            n_fixed = len(student.vocab) - width
            shift = rows[-1] - text_rows[-1]
            assert torch.allclose(rows[-2] - text_rows[-2], shift, atol=1e-6)
            assert torch.allclose(shift, (trained["token_embeddings"][n_fixed:]
                                          - student.text_rows(Vocabulary(PRETRAIN_FEATURES).tokens)[n_fixed:]).mean(0),
                                  atol=1e-6)
        for name, tensor in student.expression_tensors().items():
            if name not in ("token_embeddings", "head"):  # every structure table and the shape bias
                assert torch.equal(tensor, trained[name]), name
        assert hasattr(student.lm, "peft_config")  # its adapter goes on training in the fine-tuning
        rows = student.sample(3, Grammar(student.vocab), masked=True, seed=0)
        assert all(row.finished for row in rows)
    # Saved and loaded, it keeps every table; a student saved in another layout is a clear error.
    import json

    student.save(tmp_path / "saved")
    # The adapter's record names this student's base model, not the folder the state was trained on
    # (a shipped state names it without a path).
    adapter = json.loads((tmp_path / "saved" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == student.base.name_or_path
    loaded = Student.load(tmp_path / "saved")
    for name, tensor in student.expression_tensors().items():
        assert torch.equal(loaded.expression_tensors()[name], tensor), name
    meta = json.loads((tmp_path / "saved" / "student.json").read_text())
    (tmp_path / "saved" / "student.json").write_text(json.dumps({**meta, "schema_version": 1}))
    with pytest.raises(FeatteamError, match="another featteam version"):
        Student.load(tmp_path / "saved")


def test_prefix_shape_tracks_depth_length_count_pairs_and_repeats():
    pytest.importorskip("torch")
    from featteam.expr import Vocabulary
    from featteam.models.student import PrefixShape

    vocab = Vocabulary(4)
    shape = PrefixShape(vocab)
    seen = [shape.push(i) for i in vocab.encode(["f1", "f1", "-", "<sep>", "f1", "f1", "-", "<sep>", "f2", "sqrt"])]
    assert seen[1] == (2, 2, 0, 1, 0)   # two equal values on the stack: f1 f1
    assert seen[2] == (1, 3, 0, 0, 0)   # f1 f1 - is one value
    assert seen[3] == (0, 0, 1, 0, 0)   # closed
    assert seen[6] == (1, 3, 1, 0, 1)   # the second feature repeats the first
    assert seen[9] == (1, 2, 2, 0, 0)
    copy = shape.copy()
    assert copy.push(vocab.eos_id) == shape.push(vocab.eos_id) == (1, 2, 2, 0, 0)  # the end adds nothing
    assert copy.push(vocab.index["f2"]) == (2, 3, 2, 0, 0)
    assert shape.push(vocab.eos_id) == (1, 2, 2, 0, 0)  # the copy's push left the original as it was
    # An operator without its operands (an arity error) keeps the depth rule of the grammar.
    assert PrefixShape(vocab).push(vocab.index["+"])[0] == 0


@pytest.mark.slow
def test_prepare_command_uses_the_shipped_state_or_trains_and_caches_one(model_dir, tmp_path, monkeypatch, capsys):
    """``featteam prepare`` with the embedded model finds the shipped state and writes nothing;
    ``--no-shipped`` trains one into the cache even where one is shipped, and ``--ship`` trains
    one afresh and copies it into the shipped states (with a tiny configuration standing in for
    the default, and a shipped folder of the test's own: the package's is never touched)."""
    import json
    from pathlib import Path

    import torch

    from featteam.cli import main
    from featteam.models import pretrain

    package_states = sorted(pretrain.SHIPPED_STATES.rglob("*"))

    def last_line():
        out = capsys.readouterr().out.strip().splitlines()[-1]
        assert "student pre-trained on the expression language" in out
        return out, Path(out.rsplit(" in ", 1)[1])

    monkeypatch.setenv("FEATTEAM_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["prepare", "--no-progress", "--student-model", model_dir]) == 0
    out, directory = last_line()
    assert "shipped with featteam" in out and directory.parent == pretrain.SHIPPED_STATES
    assert not (tmp_path / "cache" / "students").exists()  # nothing trained, nothing written

    monkeypatch.setattr(PretrainConfig, "for_student", classmethod(lambda cls, student: TINY))
    assert main(["prepare", "--no-progress", "--student-model", model_dir, "--no-shipped"]) == 0
    out, trained = last_line()
    assert "trained now" in out and trained.parent == tmp_path / "cache" / "students"
    assert main(["prepare", "--no-progress", "--student-model", model_dir, "--no-shipped"]) == 0
    assert "(cached)" in last_line()[0]
    # --ship trains afresh (not from the cache, which an older code may have filled under the same
    # name) and replaces the state shipped for the same model, and only that one.
    (trained / "expression_tokens.safetensors").write_bytes(b"left by an older code")
    monkeypatch.setattr(pretrain, "SHIPPED_STATES", tmp_path / "shipped")
    (tmp_path / "shipped" / (Path(model_dir).name + "-0123456789ab") / "adapter").mkdir(parents=True)
    (tmp_path / "shipped" / (Path(model_dir).name + "-extra-0123456789ab")).mkdir()  # another model
    assert main(["prepare", "--no-progress", "--student-model", model_dir, "--ship"]) == 0
    out, shipped = last_line()
    assert "trained now" in out and shipped == tmp_path / "shipped" / trained.name
    assert sorted(p.name for p in (tmp_path / "shipped").iterdir()) == sorted(
        [Path(model_dir).name + "-extra-0123456789ab", trained.name])
    assert sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*") if p.is_file()) == sorted(
        pretrain.SHIPPED_FILES)
    adapter = json.loads((shipped / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == Path(model_dir).name
    # Shipped, a fit's prepare takes it, and --no-shipped trains the same state again (the same seed:
    # the same tensors).
    monkeypatch.setenv("FEATTEAM_CACHE_DIR", str(tmp_path / "other-cache"))
    assert main(["prepare", "--no-progress", "--student-model", model_dir]) == 0
    out, directory = last_line()
    assert "shipped with featteam" in out and directory == shipped
    assert main(["prepare", "--no-progress", "--student-model", model_dir, "--no-shipped"]) == 0
    out, again = last_line()
    assert "trained now" in out and again.parent == tmp_path / "other-cache" / "students"
    for name, tensor in _tensors(again).items():
        assert torch.equal(tensor, _tensors(shipped)[name]), name
    # Only a complete state of a conversion is shipped.
    from featteam.errors import FeatteamError

    with pytest.raises(FeatteamError, match="not a complete"):
        pretrain.ship(tmp_path / "cache", Path(model_dir))
    plain = tmp_path / "plain-model"
    plain.mkdir()
    with pytest.raises(FeatteamError, match="only a conversion"):
        pretrain.ship(again, plain)
    assert sorted(pretrain.SHIPPED_STATES.iterdir()) == sorted(
        [shipped, tmp_path / "shipped" / (Path(model_dir).name + "-extra-0123456789ab")])
    monkeypatch.undo()
    assert sorted(pretrain.SHIPPED_STATES.rglob("*")) == package_states  # the package's own, untouched
