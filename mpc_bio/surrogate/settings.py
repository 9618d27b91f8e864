"""SurrogateSettings: every choice that shapes a trained pFBA surrogate, checked on creation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["SurrogateSettings", "ACTIVATIONS", "TARGETS", "DEVICES", "PROJECTION_METRICS"]

#: Smooth hidden activations (ReLU is excluded: its second derivative breaks IPOPT's Hessian).
ACTIVATIONS = ("silu", "tanh", "softplus")
#: What the network's last layer predicts: net fluxes v, or the split non-negative parts (v+, v-).
TARGETS = ("net", "split")
#: Metric of the mass-balance projection: plain Euclidean, or scaled by each reaction's flux range.
PROJECTION_METRICS = ("euclidean", "range")
#: Where training runs; "auto" picks cuda when available, else cpu.
DEVICES = ("auto", "cpu", "cuda")


def _bad(name: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"The {name!r} parameter of SurrogateSettings must be {expected}. Got {got!r} instead.")


@dataclass(frozen=True)
class SurrogateSettings:
    """Architecture and training settings of a pFBA surrogate (paper 1, Eq. 5).

    Attributes
    ----------
    hidden : tuple of int
        Width of each hidden layer (number of neurons); ``(64, 64)`` is two layers of 64.
    activation : str
        Hidden activation, one of :data:`ACTIVATIONS`; all are smooth (C-infinity).
    activation_sharpness : float
        beta > 0 (dimensionless): training uses ``act(beta * a) / beta``, whose bend is beta times
        narrower. The same functions (beta folds into the saved weights, which use the plain
        activation), but the optimiser reaches the narrow kinks of the pFBA map with ordinary weight
        sizes. 1 is the plain activation.
    input_knees : tuple of float
        Input warp: one knee per input (mmol/gDW/h, > 0), or empty (no warp). The first layer then
        also sees asinh(x / knee) for every input, scaled to [-1, 1], which stretches the range
        below about the knee: the narrow features of the pFBA map near zero glucose (edge of the
        relaxed region) or zero oxygen (anaerobic strip) get as much of the network's input space
        as the rest of the domain.
    kink_lines : tuple of tuple of float
        Known kink hyperplanes of the pFBA map, each ``(a_1, ..., a_k, c)`` for a . x = c (x in
        mmol/gDW/h, inputs in the data's order), or empty (none). The first layer then also sees,
        per hyperplane, the kink feature of the signed distance t = (a . x - c) / |a| (mmol/gDW/h):
        the difference between a hinge rounded over ``kink_reach`` and a sharp one rounded over
        ``kink_width``, d log(1 + exp(t / d)) - w log(1 + exp(t / w)), a bump of height
        (d - w) log 2 on the line that vanishes away from it, scaled to peak ``kink_gain``. A smooth
        net rounds a kink of the map (a phase boundary, where a reaction switches on) over a few
        hundredths; adding this bump is what turns its rounded kink into a sharp one, and because
        the bump is local, learning it leaves the map away from the line alone (iCH360: GLUSy's kink
        along oxygen = 2.767 glucose + 1.529). Find the lines with
        :func:`mpc_bio.metabolism.switch_points` and :func:`mpc_bio.metabolism.fit_hyperplane`. A
        warm start (``init``) without them, or with only the leading ones of them, adds the others
        with zero weights: the init's function is kept.
    kink_width : float
        w > 0 (mmol/gDW/h): how sharp the kink features make a kink. The kinks of a pFBA map are
        exact (the solution is piecewise affine in the uptakes), and the feature's own rounding,
        about w log 2 times the jump of a flux's slope across the line, is an error the rest of the
        net has to cancel: keep it well below the accuracy wanted. iCH360's sulfate uptake ramps up
        between two lines 0-0.0065 mmol/gDW/h apart (slope jump 0.15 of its range per 0.001 of
        distance): with w = 0.002 its errors stayed near 2 % of the range on the ramp, with 2e-4 or
        3e-5 they fell to 1 %. Training evaluates the features in float32, which resolves the
        distance to about 1e-7 |x|: keep w above 1e-6 |x|.
    kink_reach : float
        d > ``kink_width`` (mmol/gDW/h): how far from its line a kink feature reaches; about the
        width over which the net without it rounds the kink off.
    kink_extra_reaches : tuple of float
        Further reaches d_2, d_3, ... (mmol/gDW/h, each > ``kink_width``, all reaches different):
        every kink line then gets one feature per reach (per line: ``kink_reach`` first, then
        these), the same sharp hinge minus hinges rounded over different widths. Their weighted
        sums can take the shape of whatever rounding the rest of the net has learnt across the
        line, so a branch beside a trained net (``freeze_init``) can cancel that rounding near
        the line instead of leaving a ringing of a few hundredths. Empty (the default): one feature
        per line.
    kink_gain : float
        g > 0 (dimensionless): peak of the scaled kink features. Adam moves every weight by about
        the same step, so a larger g lets the kink weights grow faster, and makes their first steps
        larger (added to a trained iCH360 net at g 10-50, they raised the L^8 loss at once); same
        function class.
    target : str
        ``"net"``: the last layer predicts net fluxes (mmol/gDW/h). ``"split"``: it predicts the
        non-negative parts v+ and v- as in the paper, and v = v+ - v- is formed inside the model.
    mass_balance : bool
        Project the predicted net fluxes onto {v : S v = 0, v[input reactions] = -inputs} with a
        fixed affine map, so mass balances hold to machine precision (float64).
    projection_metric : str
        Metric of the mass-balance projection: ``"euclidean"`` (every reaction absorbs the same
        correction in mmol/gDW/h) or ``"range"`` (corrections in proportion to each reaction's flux
        range over the training data, so small-range reactions absorb little). Either way the
        projected fluxes balance exactly; only the parametrisation the optimiser sees changes.
    epochs : int
        Maximum number of Adam epochs (passes over the training points) on the mean squared error.
        0 skips this stage: a warm restart (``init``) that only fine-tunes keeps the init's tail
        accuracy instead of first spending an epoch on the mean (at least one stage must run).
    batch_size : int
        Points per Adam step.
    lr : float
        Initial Adam learning rate (1/step, dimensionless); decays by cosine to ``lr * lr_final_ratio``.
    lr_final_ratio : float
        Ratio of the final to the initial learning rate of the cosine schedule, in (0, 1].
    patience : int
        Early stopping: stop after this many epochs without a better validation loss.
    validation_fraction : float
        Fraction of the training points held out for validation and early stopping, in (0, 0.5].
    growth_weight : float
        Extra loss weight of the growth (objective) reaction relative to any other reaction
        (dimensionless, >= 1 puts more accuracy on growth).
    reaction_weights : tuple of (str, float)
        Loss weights of other named reactions relative to the default 1 (dimensionless, > 0),
        given as a mapping ``{"ASNS1": 10.0}`` or as pairs; stored as pairs sorted by id. Use it to
        buy accuracy on reactions whose worst-case error is above target (e.g. a jump between two
        alternative routes) in a warm restart. The objective is weighted by ``growth_weight``.
    lbfgs_steps : int
        Full-batch L-BFGS iterations after Adam (0 switches it off); run in float64 on the
        fine-tuning loss (the L^p loss when ``finetune_power > 2``).
    finetune_epochs : int
        Adam epochs of a second stage that minimises the L^p loss below (0 switches it off). The
        accuracy target is a worst case (max error per reaction), which the mean squared error of
        the first stage under-weights; large p weighs the largest scaled errors most.
    finetune_power : int
        Even exponent p in [2, 16] of the fine-tuning loss (mean over points and reactions of
        |error / flux range|^p, growth weighted as above), raised to 2/p (dimensionless).
        2 keeps the mean squared error.
    finetune_lr_ratio : float
        Initial learning rate of the fine-tuning stage as a fraction of ``lr``, in (0, 1]; it decays
        by cosine to ``lr * lr_final_ratio``.
    finetune_batch_size : int
        Points per Adam step of the fine-tuning stage (larger batches see more of the rare large errors).
    freeze_init : bool
        Only with a warm start (``init``) and every hidden layer wider than the init's: train only
        the added neurons, as a branch beside the init's network (block diagonal: the branch's
        neurons read the input features and each other, never the init's neurons, nor they the
        branch's), whose output adds to the init's. The init's weights are kept exactly, so its
        accuracy cannot be lost; the branch is fitted to the init's residual, at the cost of a
        network of the branch's width. For a trained net that misses near known kinks: add
        ``kink_lines`` and a narrow branch (iCH360: 4 x 64 beside 4 x 192). The outcome depends on
        the branch's random start (``seed``; iCH360: 3 of 5 seeds helped): try a few.
    seed : int
        Seed of the weight initialisation, the validation split and the batch order.
    device : str
        ``"auto"`` (cuda if available, else cpu), ``"cpu"`` or ``"cuda"``.
    num_threads : int
        torch CPU threads while training (0 keeps torch's default).
    """

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "silu"
    activation_sharpness: float = 1.0
    input_knees: tuple[float, ...] = ()
    kink_lines: tuple[tuple[float, ...], ...] = ()
    kink_width: float = 2e-4
    kink_reach: float = 0.05
    kink_extra_reaches: tuple[float, ...] = ()
    kink_gain: float = 1.0
    target: str = "net"
    mass_balance: bool = True
    projection_metric: str = "euclidean"
    epochs: int = 2000
    batch_size: int = 512
    lr: float = 3e-3
    lr_final_ratio: float = 1e-3
    patience: int = 400
    validation_fraction: float = 0.1
    growth_weight: float = 4.0
    reaction_weights: tuple[tuple[str, float], ...] = ()
    lbfgs_steps: int = 0
    finetune_epochs: int = 0
    finetune_power: int = 2
    finetune_lr_ratio: float = 0.1
    finetune_batch_size: int = 2048
    freeze_init: bool = False
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0

    def __post_init__(self) -> None:
        hidden = tuple(self.hidden)
        if not hidden or any((not isinstance(h, int)) or isinstance(h, bool) or h < 1 for h in hidden):
            raise _bad("hidden", "a non-empty tuple of positive integers (neurons per layer)", self.hidden)
        object.__setattr__(self, "hidden", hidden)
        if self.activation not in ACTIVATIONS:
            raise _bad("activation", f"one of {ACTIVATIONS}", self.activation)
        sh = self.activation_sharpness
        if isinstance(sh, bool) or not isinstance(sh, (int, float)) or not 0 < sh < 1e4:
            raise _bad("activation_sharpness", "a number in (0, 1e4) (dimensionless)", sh)
        knees = tuple(self.input_knees)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in knees):
            raise _bad("input_knees", "a tuple of positive numbers (mmol/gDW/h), one per input, or empty", self.input_knees)
        object.__setattr__(self, "input_knees", tuple(float(v) for v in knees))
        lines = tuple(tuple(row) for row in self.kink_lines)
        if any(
            len(row) < 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in row)
            or not any(row[:-1]) or len(row) != len(lines[0])
            for row in lines
        ):
            raise _bad("kink_lines", "a tuple of (a_1, ..., a_k, c) rows of finite numbers, all of one length, a not all zero",
                       self.kink_lines)
        object.__setattr__(self, "kink_lines", tuple(tuple(float(v) for v in row) for row in lines))
        kw = self.kink_width
        if isinstance(kw, bool) or not isinstance(kw, (int, float)) or not 0 < kw < 1e3:
            raise _bad("kink_width", "a number in (0, 1e3) (mmol/gDW/h)", kw)
        kr = self.kink_reach
        if isinstance(kr, bool) or not isinstance(kr, (int, float)) or not kw < kr < 1e3:
            raise _bad("kink_reach", f"a number in (kink_width = {kw!r}, 1e3) (mmol/gDW/h)", kr)
        extra = tuple(self.kink_extra_reaches)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not kw < v < 1e3 for v in extra) or len(
            {float(kr), *map(float, extra)}
        ) != len(extra) + 1:
            raise _bad(
                "kink_extra_reaches",
                f"a tuple of numbers in (kink_width = {kw!r}, 1e3) (mmol/gDW/h), all different from each other and "
                f"from kink_reach = {kr!r}, or empty",
                self.kink_extra_reaches,
            )
        object.__setattr__(self, "kink_extra_reaches", tuple(float(v) for v in extra))
        kg = self.kink_gain
        if isinstance(kg, bool) or not isinstance(kg, (int, float)) or not 0 < kg < 1e4:
            raise _bad("kink_gain", "a number in (0, 1e4) (dimensionless)", kg)
        if self.target not in TARGETS:
            raise _bad("target", f"one of {TARGETS}", self.target)
        if not isinstance(self.mass_balance, bool):
            raise _bad("mass_balance", "a bool", self.mass_balance)
        if self.projection_metric not in PROJECTION_METRICS:
            raise _bad("projection_metric", f"one of {PROJECTION_METRICS}", self.projection_metric)
        for name in ("batch_size", "finetune_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise _bad(name, "a positive integer", v)
        for name in ("epochs", "patience", "lbfgs_steps", "finetune_epochs", "seed", "num_threads"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise _bad(name, "a non-negative integer", v)
        if self.epochs + self.finetune_epochs + self.lbfgs_steps == 0:
            raise _bad("epochs", "at least 1 when finetune_epochs and lbfgs_steps are 0 (some stage must train)", self.epochs)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise _bad("lr", "a positive number (Adam step size)", self.lr)
        if not (isinstance(self.lr_final_ratio, (int, float)) and 0 < self.lr_final_ratio <= 1):
            raise _bad("lr_final_ratio", "a number in (0, 1]", self.lr_final_ratio)
        fp = self.finetune_power
        if not isinstance(fp, int) or isinstance(fp, bool) or fp < 2 or fp > 16 or fp % 2:
            raise _bad("finetune_power", "an even integer in [2, 16]", fp)
        if not (isinstance(self.finetune_lr_ratio, (int, float)) and 0 < self.finetune_lr_ratio <= 1):
            raise _bad("finetune_lr_ratio", "a number in (0, 1]", self.finetune_lr_ratio)
        if not (isinstance(self.validation_fraction, (int, float)) and 0 < self.validation_fraction <= 0.5):
            raise _bad("validation_fraction", "a number in (0, 0.5]", self.validation_fraction)
        if not (isinstance(self.growth_weight, (int, float)) and self.growth_weight > 0):
            raise _bad("growth_weight", "a positive number", self.growth_weight)
        rw = self.reaction_weights
        pairs = list(rw.items()) if isinstance(rw, dict) else list(rw)
        if not all(
            isinstance(pr, (tuple, list)) and len(pr) == 2 and isinstance(pr[0], str)
            and isinstance(pr[1], (int, float)) and not isinstance(pr[1], bool) and pr[1] > 0
            for pr in pairs
        ) or len({pr[0] for pr in pairs}) != len(pairs):
            raise _bad("reaction_weights", "a mapping {reaction id: positive weight} with each id once", rw)
        object.__setattr__(self, "reaction_weights", tuple(sorted((str(i), float(w)) for i, w in pairs)))
        if not isinstance(self.freeze_init, bool):
            raise _bad("freeze_init", "a bool", self.freeze_init)
        if self.device not in DEVICES:
            raise _bad("device", f"one of {DEVICES}", self.device)

    def to_dict(self) -> dict[str, Any]:
        """Json-serialisable dict (tuples become lists)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["input_knees"] = list(self.input_knees)
        d["kink_lines"] = [list(row) for row in self.kink_lines]
        d["kink_extra_reaches"] = list(self.kink_extra_reaches)
        d["reaction_weights"] = dict(self.reaction_weights)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SurrogateSettings":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown SurrogateSettings keys {unknown}; known keys are {sorted(known)}.")
        d = dict(data)
        if "hidden" in d:
            d["hidden"] = tuple(int(h) for h in d["hidden"])
        if "input_knees" in d:
            d["input_knees"] = tuple(float(v) for v in d["input_knees"])
        if "kink_lines" in d:
            d["kink_lines"] = tuple(tuple(float(v) for v in row) for row in d["kink_lines"])
        if "kink_extra_reaches" in d:
            d["kink_extra_reaches"] = tuple(float(v) for v in d["kink_extra_reaches"])
        return cls(**d)
