"""Approval is an explicit act with provenance: training never writes the lock; `approve` refuses what it cannot vouch
for (uncommitted code, code changed since training, quick runs, files changed after training)."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import quick_train
from veid_ml import cli, determinism, governance, hashing, registry

NAME = "liveness_detection"  # any registered name: the candidate below is the tiny model under its artifact name
ARTIFACT = registry.get(NAME).artifact


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A committed checkout in miniature: the model package, the shared core and the pinned requirements."""
    root = tmp_path / "repo"
    for rel in (f"ml/{NAME}/task.py", "ml/veid_ml/training.py", "ml/requirements-deterministic.txt",
                "pyproject.toml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n")
    git(root, "init", "-q")
    git(root, "-c", "user.email=t@example.org", "-c", "user.name=t", "add", "-A")
    git(root, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "code")
    return root


def make_candidate(repo, tiny_export, profile="full"):
    """The tiny model as a trained candidate of NAME, with the metrics.json and provenance.json training writes."""
    source = repo / "ml" / NAME / "weights.candidate"
    shutil.copytree(tiny_export / "tiny_model", source / ARTIFACT)
    shutil.copy(tiny_export / "tiny_model_frozen.pb", source / f"{ARTIFACT}_frozen.pb")
    manifest = hashing.write_manifest(source, ARTIFACT)
    config = {"profile": profile, "seed": 42, "epochs": 1}
    dataset = {"source": "synthetic", "train": {"content_hash": "ab" * 32}}
    (source / "metrics.json").write_text(json.dumps({"training_config": config, "dataset": dataset,
                                                     "metrics": {"accuracy": 0.9}}))
    governance.write_run_provenance(source, NAME, ["train.py", "--seed", "42"], config, dataset, manifest,
                                    "2026-01-01T00:00:00Z", repo=repo)
    return source


def approve(repo, source):
    return governance.approve(NAME, source, repo / "ml" / "models.lock.json", repo=repo)


def test_approval_installs_the_candidate_and_records_provenance(repo, tiny_export, capsys):
    source = make_candidate(repo, tiny_export)
    manifest = approve(repo, source)
    lock_path = repo / "ml" / "models.lock.json"
    entry = hashing.read_lock(lock_path)["models"][NAME]
    assert entry["digest"] == manifest["digest"] == hashing.compute_manifest(source, ARTIFACT)["digest"]
    assert hashing.verify(lock_path, [NAME]) == {NAME: []}  # installed into weights/
    statement = entry["provenance"]
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["digest"]["sha256"] == manifest["digest"].removeprefix("sha256:")
    build = statement["predicate"]["buildDefinition"]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert build["resolvedDependencies"][0]["digest"]["gitCommit"] == head
    assert build["externalParameters"]["config"]["seed"] == 42
    assert build["resolvedDependencies"][1]["annotations"]["dataset"]["train"]["content_hash"] == "ab" * 32
    assert entry["approved_on_cpu"] == determinism.cpu_class()
    assert "tensorflow-cpu" in statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]
    assert cli.main(["verify", "--lock", str(lock_path), "--provenance"]) == 0
    out = capsys.readouterr().out
    assert f"code commit:  {head}" in out and "cpu class:" in out


def test_uncommitted_model_code_is_refused(repo, tiny_export):
    source = make_candidate(repo, tiny_export)
    (repo / "ml" / "veid_ml" / "training.py").write_text("# edited\n")
    with pytest.raises(governance.ApprovalError, match="uncommitted changes.*ml/veid_ml/training.py"):
        approve(repo, source)
    assert not (repo / "ml" / "models.lock.json").exists()


def test_a_candidate_trained_from_uncommitted_code_is_refused(repo, tiny_export):
    (repo / "ml" / NAME / "task.py").write_text("# experiment\n")
    source = make_candidate(repo, tiny_export)
    git(repo, "checkout", "--", f"ml/{NAME}/task.py")  # the tree is clean again, but the run was not
    with pytest.raises(governance.ApprovalError, match="trained from uncommitted code"):
        approve(repo, source)


def test_code_changed_since_training_is_refused(repo, tiny_export):
    source = make_candidate(repo, tiny_export)
    (repo / "ml" / NAME / "task.py").write_text("# a later change\n")
    git(repo, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qam", "later")
    with pytest.raises(governance.ApprovalError, match="changed between the training commit"):
        approve(repo, source)


def test_quick_runs_and_altered_files_are_refused(repo, tiny_export):
    source = make_candidate(repo, tiny_export, profile="quick")
    with pytest.raises(governance.ApprovalError, match="quick-profile"):
        approve(repo, source)
    shutil.rmtree(source)
    source = make_candidate(repo, tiny_export)
    (source / f"{ARTIFACT}_frozen.pb").write_bytes(b"tampered")
    with pytest.raises(governance.ApprovalError, match="files changed since training"):
        approve(repo, source)


def test_approve_command_reports_refusals_in_one_line(repo, tiny_export, capsys, monkeypatch):
    monkeypatch.setattr(governance, "REPO_ROOT", repo)
    rc = cli.main(["approve", NAME, "--source", str(repo / "nothing"), "--lock", str(repo / "ml" / "lock.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("approve: ") and len(err.strip().splitlines()) == 1


def test_verdicts(tmp_path, tiny_export):
    lock_path = tmp_path / "models.lock.json"
    run = tmp_path / "run"
    shutil.copytree(tiny_export / "tiny_model", run / ARTIFACT)
    shutil.copy(tiny_export / "tiny_model_frozen.pb", run / f"{ARTIFACT}_frozen.pb")
    manifest = hashing.write_manifest(run, ARTIFACT)
    (run / "metrics.json").write_text(json.dumps({"training_config": {"profile": "full", "seed": 42},
                                                  "dataset": {"source": "synthetic"}, "metrics": {"accuracy": 0.9}}))
    assert "not yet approved" in governance.verdict(NAME, run, lock_path)
    hashing.record_approval(lock_path, NAME, run, manifest, cpu_class="GenuineIntel family 6 model 0", provenance={})
    assert "reproduced the approved bytes" in governance.verdict(NAME, run, lock_path)
    lock = json.loads(lock_path.read_text())
    lock["models"][NAME]["digest"] = "sha256:" + "0" * 64
    lock_path.write_text(json.dumps(lock))
    line = governance.verdict(NAME, run, lock_path)
    assert "DIFFERS from the approved digest" in line and "approved on GenuineIntel family 6 model 0" in line
    assert determinism.cpu_class() in line


def test_training_leaves_the_lock_and_the_approved_model_untouched(tmp_path):
    spec = registry.get(NAME)
    lock_before = registry.LOCK_PATH.read_bytes()
    approved_before = hashing.compute_manifest(spec.weights_dir, spec.artifact)
    metrics_before = (spec.weights_dir / "metrics.json").read_bytes()
    quick_train(NAME, tmp_path / "run")
    assert registry.LOCK_PATH.read_bytes() == lock_before
    assert hashing.compute_manifest(spec.weights_dir, spec.artifact) == approved_before
    assert (spec.weights_dir / "metrics.json").read_bytes() == metrics_before
    statement = json.loads((tmp_path / "run" / governance.PROVENANCE_NAME).read_text())
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["config"]["profile"] == "quick"


def test_verify_checks_the_checkout_it_runs_in(tmp_path, monkeypatch):
    (tmp_path / "ml" / "veid_ml").mkdir(parents=True)
    (tmp_path / "ml" / "models.lock.json").write_text(json.dumps({"version": 1, "models": {}}))
    monkeypatch.chdir(tmp_path / "ml" / "veid_ml")
    assert registry.find_lock() == tmp_path / "ml" / "models.lock.json"
    proc = subprocess.run([sys.executable, "-m", "veid_ml.cli", "verify"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert f"lock: {tmp_path / 'ml' / 'models.lock.json'}" in proc.stdout


def test_retraining_on_another_cpu_class_is_recorded_beside_the_approval(repo, tiny_export):
    """record_reproduction keeps the approved bytes and weights/, and adds what this class re-trained; the approving
    class cannot record (its bytes are the approved ones)."""
    lock_path = repo / "ml" / "models.lock.json"
    source = make_candidate(repo, tiny_export)
    approved = approve(repo, source)
    with pytest.raises(governance.ApprovalError, match="approving CPU class"):
        governance.record_reproduction(NAME, source, lock_path, repo=repo)
    lock = hashing.read_lock(lock_path)
    lock["models"][NAME]["approved_on_cpu"] = "AuthenticAMD family 25 model 17; L1d 32K"  # as if approved elsewhere
    lock["models"][NAME]["not_reproduced_on_cpu"] = [determinism.cpu_class()]
    lock_path.write_text(json.dumps(lock))
    shutil.rmtree(repo / "ml" / NAME / "weights.candidate")
    retrained = governance.record_reproduction(NAME, make_candidate(repo, tiny_export), lock_path, repo=repo)
    entry = hashing.read_lock(lock_path)["models"][NAME]
    assert entry["digest"] == approved["digest"]  # the approval is untouched
    record = entry["reproduced_on"][determinism.cpu_class()]
    assert record["digest"] == retrained["digest"] and record["files"] == retrained["files"]
    assert record["training_commit"] and record["date"] and "not_reproduced_on_cpu" not in entry
    assert hashing.expected_bytes(entry)["digest"] == retrained["digest"]
    assert "re-trained:" in governance.describe_provenance(entry)
