"""SurrogateSettings: every choice that shapes a trained pFBA surrogate, checked on creation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mpc_bio.errors import MpcBioError
from mpc_bio.settings import POSITIVE, Settings, setting

__all__ = ["SurrogateSettings", "SurrogateSettingsError", "ACTIVATIONS", "TARGETS", "DEVICES", "PROJECTION_METRICS"]

#: Smooth hidden activations (ReLU is excluded: its second derivative breaks IPOPT's Hessian).
ACTIVATIONS = ("silu", "tanh", "softplus")
#: What the network's last layer predicts: net fluxes v, or the split non-negative parts (v+, v-).
TARGETS = ("net", "split")
#: Metric of the mass-balance projection: plain Euclidean, or scaled by each reaction's flux range.
PROJECTION_METRICS = ("euclidean", "range")
#: Where training runs; "auto" picks cuda when available, else cpu.
DEVICES = ("auto", "cpu", "cuda")


class SurrogateSettingsError(MpcBioError):
    """A surrogate setting has the wrong type or lies outside its range."""


_FRACTION = {"low": 0.0, "strict": True, "high": 1.0}
#: A dimensionless factor in (0, 1e4).
_FACTOR = {"unit": "-", **POSITIVE, "high": 1e4, "high_strict": True}
_KINK_ROWS = "a list of (a_1, ..., a_k, c) rows of finite numbers, all of one length, a not all zero"


@dataclass(frozen=True)
class SurrogateSettings(Settings):
    """Architecture and training settings of a pFBA surrogate (paper 1, Eq. 5); each field is
    documented where it is declared."""

    error: ClassVar[type] = SurrogateSettingsError

    hidden: tuple[int, ...] = setting(
        (64, 64), low=1, min_items=1, unit="neurons", doc=("Width of each hidden layer; (64, 64) is two layers of 64.")
    )
    activation: str = setting("silu", choices=ACTIVATIONS, doc="Hidden activation; all are smooth (C-infinity).")
    activation_sharpness: float = setting(
        1.0,
        **_FACTOR,
        doc=(
            "beta: training uses act(beta a) / beta, whose bend is beta times narrower. The same functions (beta folds "
            "into the saved weights, which use the plain activation), but the optimiser reaches the narrow kinks of "
            "the pFBA map with ordinary weight sizes. 1 is the plain activation."
        ),
    )
    input_knees: tuple[float, ...] = setting(
        (),
        unit="mmol/gDW/h",
        **POSITIVE,
        doc=(
            "Input warp: one knee per input, or empty (no warp). The first layer then also sees asinh(x / knee) for "
            "every input, scaled to [-1, 1], which stretches the range below about the knee: the narrow features of "
            "the pFBA map near zero glucose (edge of the relaxed region) or zero oxygen (anaerobic strip) get as much "
            "of the network's input space as the rest of the domain."
        ),
    )
    kink_lines: tuple[tuple[float, ...], ...] = setting(
        (),
        expected=_KINK_ROWS,
        doc=(
            "Known kink hyperplanes of the pFBA map, each (a_1, ..., a_k, c) for a . x = c (x in mmol/gDW/h, inputs in "
            "the data's order), or empty (none). The first layer then also sees, per hyperplane, the kink feature of "
            "the signed distance t = (a . x - c) / |a| (mmol/gDW/h): the difference between a hinge rounded over "
            "kink_reach and a sharp one rounded over kink_width, d log(1 + exp(t / d)) - w log(1 + exp(t / w)), a bump "
            "of height (d - w) log 2 on the line that vanishes away from it, scaled to peak kink_gain. A smooth net "
            "rounds a kink of the map (a phase boundary, where a reaction switches on) over a few hundredths; adding "
            "this bump turns its rounded kink into a sharp one, and because the bump is local, learning it leaves the "
            "map away from the line alone. Find the lines with mpc_bio.metabolism.switch_points and fit_hyperplane. A "
            "warm start (init) without them, or with only the leading ones of them, adds the others with zero "
            "weights: the init's function is kept."
        ),
    )
    kink_width: float = setting(
        2e-4,
        unit="mmol/gDW/h",
        **POSITIVE,
        high=1e3,
        high_strict=True,
        doc=(
            "w: how sharp the kink features make a kink. The kinks of a pFBA map are exact (the solution is piecewise "
            "affine in the uptakes), and the feature's own rounding, about w log 2 times the jump of a flux's slope "
            "across the line, is an error the rest of the net has to cancel: keep it well below the accuracy wanted. "
            "Training evaluates the features in float32, which resolves the distance to about 1e-7 |x|: keep w above "
            "1e-6 |x|."
        ),
    )
    kink_reach: float = setting(
        0.05,
        unit="mmol/gDW/h",
        **POSITIVE,
        high=1e3,
        high_strict=True,
        doc=(
            "d > kink_width: how far from its line a kink feature reaches; about the width over which the net without "
            "it rounds the kink off."
        ),
    )
    kink_extra_reaches: tuple[float, ...] = setting(
        (),
        unit="mmol/gDW/h",
        **POSITIVE,
        high=1e3,
        high_strict=True,
        doc=(
            "Further reaches d_2, d_3, ... (each > kink_width, all reaches different): every kink line then gets one "
            "feature per reach (kink_reach first, then these), the same sharp hinge minus hinges rounded over "
            "different widths. Their weighted sums can take the shape of whatever rounding the rest of the net has "
            "learnt across the line, so a branch beside a trained net (freeze_init) can cancel that rounding near the "
            "line instead of leaving a ringing of a few hundredths. Empty: one feature per line."
        ),
    )
    kink_gain: float = setting(
        1.0,
        **_FACTOR,
        doc=(
            "g: peak of the scaled kink features. Adam moves every weight by about the same step, so a larger g lets "
            "the kink weights grow faster, and makes their first steps larger; same function class."
        ),
    )
    target: str = setting(
        "net",
        choices=TARGETS,
        doc=(
            'What the last layer predicts. "net": net fluxes (mmol/gDW/h). "split": the non-negative parts v+ and '
            "v- as in the paper, and v = v+ - v- is formed inside the model."
        ),
    )
    mass_balance: bool = setting(
        True,
        doc=(
            "Project the predicted net fluxes onto {v : S v = 0, v[input reactions] = -inputs} with a fixed affine "
            "map, so mass balances hold to machine precision (float64)."
        ),
    )
    projection_metric: str = setting(
        "euclidean",
        choices=PROJECTION_METRICS,
        doc=(
            'Metric of the mass-balance projection: "euclidean" (every reaction absorbs the same correction in '
            'mmol/gDW/h) or "range" (corrections in proportion to each reaction\'s flux range over the training data, '
            "so small-range reactions absorb little). Either way the projected fluxes balance exactly; only the "
            "parametrisation the optimiser sees changes."
        ),
    )
    epochs: int = setting(
        2000,
        low=0,
        doc=(
            "Maximum number of Adam epochs (passes over the training points) on the mean squared error. 0 skips this "
            "stage: a warm restart (init) that only fine-tunes keeps the init's tail accuracy instead of first "
            "spending an epoch on the mean (at least one stage must run)."
        ),
    )
    batch_size: int = setting(512, low=1, doc="Points per Adam step.")
    lr: float = setting(
        3e-3, unit="-", **POSITIVE, doc=("Initial Adam learning rate (step size); decays by cosine to lr * lr_final_ratio.")
    )
    lr_final_ratio: float = setting(
        1e-3, unit="-", **_FRACTION, doc=("Ratio of the final to the initial learning rate of the cosine schedule.")
    )
    patience: int = setting(400, low=0, doc="Early stopping: stop after this many epochs without a better validation loss.")
    validation_fraction: float = setting(
        0.1, unit="-", low=0.0, strict=True, high=0.5, doc=("Fraction of the training points held out for validation and early stopping.")
    )
    growth_weight: float = setting(
        4.0,
        unit="-",
        **POSITIVE,
        doc=("Extra loss weight of the growth (objective) reaction relative to any other reaction (>= 1 puts more accuracy on growth)."),
    )
    reaction_weights: tuple[tuple[str, float], ...] = setting(
        (),
        unit="-",
        **POSITIVE,
        doc=(
            'Loss weights of other named reactions relative to the default 1, given as a table {"ASNS1": 10.0} or as '
            "pairs; stored as pairs sorted by id. Use it to buy accuracy on reactions whose worst-case error is above "
            "target (e.g. a jump between two alternative routes) in a warm restart. The objective is weighted by "
            "growth_weight."
        ),
    )
    lbfgs_steps: int = setting(
        0,
        low=0,
        doc=(
            "Full-batch L-BFGS iterations after Adam (0 switches it off); run in float64 on the fine-tuning loss (the "
            "L^p loss when finetune_power > 2)."
        ),
    )
    finetune_epochs: int = setting(
        0,
        low=0,
        doc=(
            "Adam epochs of a second stage that minimises the L^p loss below (0 switches it off). The accuracy target "
            "is a worst case (max error per reaction), which the mean squared error of the first stage under-weights; "
            "large p weighs the largest scaled errors most."
        ),
    )
    finetune_power: int = setting(
        2,
        choices=(2, 4, 6, 8, 10, 12, 14, 16),
        doc=(
            "Even exponent p of the fine-tuning loss (mean over points and reactions of |error / flux range|^p, growth "
            "weighted as above), raised to 2/p. 2 keeps the mean squared error."
        ),
    )
    finetune_lr_ratio: float = setting(
        0.1,
        unit="-",
        **_FRACTION,
        doc=("Initial learning rate of the fine-tuning stage as a fraction of lr; it decays by cosine to lr * lr_final_ratio."),
    )
    finetune_batch_size: int = setting(
        2048, low=1, doc=("Points per Adam step of the fine-tuning stage (larger batches see more of the rare large errors).")
    )
    freeze_init: bool = setting(
        False,
        doc=(
            "Only with a warm start (init) and every hidden layer wider than the init's: train only the added neurons, "
            "as a branch beside the init's network (block diagonal: the branch's neurons read the input features and "
            "each other, never the init's neurons, nor they the branch's), whose output adds to the init's. The "
            "init's weights are kept exactly, so its accuracy cannot be lost; the branch is fitted to the init's "
            "residual, at the cost of a network of the branch's width. For a trained net that misses near known "
            "kinks: add kink_lines and a narrow branch. The outcome depends on the branch's random start (seed): "
            "try a few."
        ),
    )
    seed: int = setting(0, low=0, doc="Seed of the weight initialisation, the validation split and the batch order.")
    device: str = setting("auto", choices=DEVICES, doc='"auto" (cuda if available, else cpu), "cpu" or "cuda".')
    num_threads: int = setting(0, low=0, doc="torch CPU threads while training (0 keeps torch's default).")

    def _check(self) -> None:
        rows = self.kink_lines
        if any(len(r) < 2 or not any(r[:-1]) or len(r) != len(rows[0]) for r in rows):
            raise self.invalid("kink_lines", _KINK_ROWS, rows)
        kw, kr = self.kink_width, self.kink_reach
        if kr <= kw:
            raise self.invalid("kink_reach", f"a number in (kink_width = {kw!r}, 1e3) (mmol/gDW/h)", kr)
        extra = self.kink_extra_reaches
        if any(v <= kw for v in extra) or len({kr, *extra}) != len(extra) + 1:
            raise self.invalid(
                "kink_extra_reaches",
                f"a list of numbers in (kink_width = {kw!r}, 1e3) (mmol/gDW/h), all "
                f"different from each other and from kink_reach = {kr!r}, or empty",
                extra,
            )
        if self.epochs + self.finetune_epochs + self.lbfgs_steps == 0:
            raise self.invalid("epochs", "at least 1 when finetune_epochs and lbfgs_steps are 0 (some stage must train)", 0)
        ids = [i for i, _ in self.reaction_weights]
        if len(set(ids)) != len(ids):
            raise self.invalid("reaction_weights", "a table {reaction id: positive weight} with each id once", self.reaction_weights)
        self._set("reaction_weights", tuple(sorted(self.reaction_weights)))
