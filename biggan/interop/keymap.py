"""State-dict names: ours <-> BigGAN-PyTorch's, as one table per net.

Our G and D mirror BigGAN-PyTorch's `BigGAN.py` module for module, and our BigGAN-deep nets its
`BigGANdeep.py` (biggan.models.deep), so most names are equal. What differs (G only; D's names are
identical):

- their BN keeps its statistics as `stored_mean` / `stored_var` on the BN module itself
  (`layers.ccbn` and `layers.bn` with mybn=False, cross_replica=False); ours sit one level
  down in `.bn.running_mean` / `.bn.running_var`, next to a `num_batches_tracked` counter
  they do not have;
- their output stage is `output_layer = Sequential(bn, activation, conv)`, ours is
  `output_bn` and `output_conv`;
- without the shared embedding their per-BN class embeddings are `nn.Embedding` weights
  [classes, C]; ours are the equivalent bias-free `nn.Linear` on a one-hot, [C, classes].

Each row of a table is (our template, their template). `{i}` / `{k}` stand for integers,
`{p}` for `gain` or `bias`, `{rest}` for the remainder of a name; a row whose other side
is None names a tensor the other layout does not have. The first row that matches wins.
"""

from __future__ import annotations

import re
from functools import cache

import torch
from torch import Tensor

_G_TABLE: tuple[tuple[str, str | None], ...] = (
    ("output_bn.bn.running_mean", "output_layer.0.stored_mean"),
    ("output_bn.bn.running_var", "output_layer.0.stored_var"),
    ("output_bn.bn.num_batches_tracked", None),
    ("output_bn.{p}", "output_layer.0.{p}"),
    ("output_conv.{rest}", "output_layer.2.{rest}"),
    ("blocks.{i}.0.bn{k}.bn.running_mean", "blocks.{i}.0.bn{k}.stored_mean"),
    ("blocks.{i}.0.bn{k}.bn.running_var", "blocks.{i}.0.bn{k}.stored_var"),
    ("blocks.{i}.0.bn{k}.bn.num_batches_tracked", None),
    ("truncation_statistics.{rest}", None),  # TF-Hub's per-truncation BN statistics (BigGAN-deep imports)
    ("{rest}", "{rest}"),  # shared, linear, convs, BN projections, attention: same names
)
_D_TABLE: tuple[tuple[str, str | None], ...] = (("{rest}", "{rest}"),)
TABLES = {"G": _G_TABLE, "D": _D_TABLE}

_FIELDS = {"i": r"\d+", "k": r"\d+", "p": r"gain|bias", "rest": r".+"}

# Per-BN class embeddings without `shared` (stored transposed in their layout, see above).
_UNSHARED_CLASS_PROJECTION = re.compile(r"^blocks\.\d+\.0\.bn\d+\.(gain|bias)\.weight$")


@cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", template)
    regex = "".join(
        f"(?P<{p[1:-1]}>{_FIELDS[p[1:-1]]})" if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(f"^{regex}$")


def _translate(key: str, net: str, ours_to_theirs: bool) -> str | None:
    for ours, theirs in TABLES[net]:
        source, target = (ours, theirs) if ours_to_theirs else (theirs, ours)
        if source is None:
            continue
        match = _pattern(source).match(key)
        if match:
            return None if target is None else target.format(**match.groupdict())
    raise KeyError(f"no {net} name rule for {key!r}")  # unreachable: the last row matches all


def their_key(our_key: str, net: str) -> str | None:
    """BigGAN-PyTorch's name for one of our keys; None when their layout has no such tensor."""
    return _translate(our_key, net, ours_to_theirs=True)


def our_key(their_key_: str, net: str) -> str | None:
    """Our name for one of BigGAN-PyTorch's keys."""
    return _translate(their_key_, net, ours_to_theirs=False)


def ours_only_keys(net: str, our_keys: list[str]) -> list[str]:
    """Our tensors with no counterpart in their layout (BN `num_batches_tracked`)."""
    return [k for k in our_keys if their_key(k, net) is None]


def needs_transpose(our_key_: str, shared: bool) -> bool:
    """True for a per-BN class embedding of a G without the shared embedding."""
    return not shared and _UNSHARED_CLASS_PROJECTION.match(our_key_) is not None


# ------------------------------------------------------------------ their BN layouts

def normalize_bn_layout(G_sd: dict[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """Their G in the default BN layout, whichever of their three BN options wrote it.

    `layers.ccbn` / `layers.bn` keep `stored_mean`/`stored_var` on themselves by default; with
    `--mybn` they sit in a child `bn` (`layers.myBN`) with an `accumulation_counter`, and while
    standing statistics accumulate (`utils.accumulate_standing_stats`) they are SUMS that
    myBN's eval forward divides by the counter, so we divide here; with `--cross_replica` the
    child is their SyncBN (`running_mean`/`running_var`/`num_batches_tracked`). In eval mode
    all three normalise with the stored statistics, so the default layout carries them all.
    Returns the dict and the layout name: "default", "mybn" or "cross_replica".
    """
    out: dict[str, Tensor] = {}
    layout = "default"
    counters = {k[: -len(".bn.accumulation_counter")]: v for k, v in G_sd.items()
                if k.endswith(".bn.accumulation_counter")}
    for key, value in G_sd.items():
        match = re.match(r"^(.*)\.bn\.(stored_mean|stored_var|running_mean|running_var|"
                         r"num_batches_tracked|accumulation_counter)$", key)
        if match is None or not _is_their_bn(match.group(1)):
            out[key] = value
            continue
        owner, leaf = match.groups()
        if leaf in ("accumulation_counter", "num_batches_tracked"):
            continue
        if leaf.startswith("stored"):
            layout = "mybn"
            count = float(counters.get(owner, torch.zeros(1)).reshape(-1)[0])
            value = value / count if count > 0 else value
        else:
            layout = "cross_replica"
        out[f"{owner}.{leaf.replace('running', 'stored')}"] = value
    return out, layout


def _is_their_bn(owner: str) -> bool:
    return owner == "output_layer.0" or re.match(r"^blocks\.\d+\.0\.bn\d+$", owner) is not None


# ------------------------------------------------------------------ their key order

# BigGAN-PyTorch registers G as shared, linear, blocks, output_layer; a GBlock as conv1, conv2,
# conv_sc, bn1, bn2; a ccbn as its buffers, then gain, bias; D as blocks, linear, embed.
# state_dict() lists a module's own parameters, then its own buffers, then its children.
# BigGANdeep.py registers a deep GBlock's conv1..conv4 then bn1..bn4, a deep D's input_conv
# first and a deep DBlock's conv1..conv4 then conv_sc: the same orders, with more names.
_CHILD_ORDER = {
    "G": ("shared", "linear", "blocks", "output_layer", "conv1", "conv2", "conv3", "conv4", "conv_sc",
          "bn1", "bn2", "bn3", "bn4", "gain", "bias", "theta", "phi", "g", "o"),
    "D": ("input_conv", "blocks", "linear", "embed", "conv1", "conv2", "conv3", "conv4", "conv_sc",
          "theta", "phi", "g", "o"),
}
_PARAM_LEAVES = ("weight", "gain", "bias", "gamma")  # nn.Linear: weight, bias; layers.bn: gain, bias
_BUFFER_LEAVES = ("stored_mean", "stored_var")


def their_order(keys: list[str], net: str) -> list[str]:
    """`keys` (their layout) in the order their `state_dict()` and `parameters()` list them.

    Their optimizer state (`G.optim`) indexes parameters by that order, so the optimizer
    files we write for them must follow it.
    """
    children = _CHILD_ORDER[net]

    def rank(key: str) -> tuple:
        parts = key.split(".")
        out = []
        for depth, part in enumerate(parts):
            if depth == len(parts) - 1:  # a tensor of this module: parameters, then buffers
                sv = re.match(r"^(u|sv)(\d+)$", part)
                if part in _PARAM_LEAVES:
                    out.append((0, _PARAM_LEAVES.index(part), 0))
                elif part in _BUFFER_LEAVES:
                    out.append((0, 10 + _BUFFER_LEAVES.index(part), 0))
                elif sv:  # SN registers u0, sv0, u1, sv1, ...
                    out.append((0, 20 + 2 * int(sv.group(2)) + (sv.group(1) == "sv"), 0))
                else:
                    raise KeyError(f"unknown tensor name {part!r} in {net} key {key!r}")
            elif part.isdigit():
                out.append((1, int(part), 0))
            elif part in children:
                out.append((1, children.index(part), 1))
            else:
                raise KeyError(f"unknown module name {part!r} in {net} key {key!r}")
        return tuple(out)

    return sorted(keys, key=rank)
