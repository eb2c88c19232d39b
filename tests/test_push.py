"""`depthlm push FOLDER REPO`: the DepthLM card is rewritten for the repository, then the folder is uploaded
(offline: `HfApi` is replaced by a recorder)."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from depthlm_hf.scripts import push as push_script
from depthlm_hf.training.modelcard import ModelCardInfo, write_model_card


class RecordingApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        self.card = (kwargs["folder_path"] + "/README.md", open(kwargs["folder_path"] + "/README.md").read())
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()


def test_push_uploads_the_folder_with_the_depthlm_card(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "run"
    info = ModelCardInfo("Qwen/Qwen2.5-VL-3B-Instruct", eval_results={"ibims1": {"delta1": 0.8}})
    write_model_card(folder, info)
    (folder / "model.safetensors").write_bytes(b"weights")
    api = RecordingApi()
    monkeypatch.setattr(push_script, "HfApi", lambda: api)
    url = push_script.main([str(folder), "me/depthlm-3b", "--private", "true", "--license", "apache-2.0"])
    assert url == "https://huggingface.co/me/depthlm-3b/commit/abc"
    (create, upload) = api.calls
    assert create == ("create_repo", "me/depthlm-3b", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert upload[2]["folder_path"] == str(folder) and "checkpoint-*" in upload[2]["ignore_patterns"]
    card = ModelCard(api.card[1])  # what was uploaded: the DepthLM card, titled and addressed for the repo
    assert card.data.base_model == "Qwen/Qwen2.5-VL-3B-Instruct" and card.data.license == "apache-2.0"
    assert card.text.lstrip().startswith("# depthlm-3b") and 'from_pretrained("me/depthlm-3b")' in card.text
    assert [(r.dataset_name, r.metric_value) for r in card.data.eval_results] == [("ibims1", 0.8)]
    assert "pushed" in capsys.readouterr().out


def test_push_needs_a_depthlm_folder(tmp_path):
    with pytest.raises(ValueError, match="`folder`"):
        push_script.main([str(tmp_path / "missing"), "me/x"])
    with pytest.raises(FileNotFoundError, match="depthlm_card.json"):
        push_script.main([str(tmp_path), "me/x"])
