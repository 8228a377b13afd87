"""Grad-CAM heat-maps of the sarcoma call (issue 18): where on a tumour crop the network saw sarcoma. No Django.

Grad-CAM (Selvaraju et al. 2017) weights the last convolutional block's K feature maps ``A_k`` (h × w) by the
mean gradient of a class score over each map, sums them and keeps the positive part:
``ReLU(Σ_k α_k A_k)``, ``α_k = mean_ij ∂y/∂A_k[i, j]``. Our score ``y`` is the **sarcoma logit**, the log-odds
``z_sarcoma − z_leiomyoma`` of the 2-class softmax (``log p / (1 − p)``): the quantity whose sign decides the
call, so a region that raises both class scores alike does not light up.

Why no gradient is taken here: behind the last block our network is global average pooling and one dense
layer (``training.network``), so ``y = (1 / hw) Σ_ij Σ_k A_k[i, j] (W_k,1 − W_k,0) + b``. Its gradient is
constant, ``α_k = (W_k,1 − W_k,0) / hw``, and Grad-CAM equals the class activation map of Zhou et al. (2016),
which the Grad-CAM paper proves. The map is then one forward pass and a dot product, on every Keras backend
(TensorFlow, JAX, PyTorch) alike, with no backend's gradient API. A test checks the equality against
TensorFlow's ``GradientTape`` on the model.

Units: a cell's value is its share of the sarcoma log-odds (``Σ_ij map + b = y`` before the ReLU), so the maps
of different models and slices are on one scale and may be averaged. The ensemble's map of a slice is the
positive part of the mean of its models' signed maps (``ensemble_map``); the map is upsampled bilinearly from
the h × w grid to the crop (``upsample``) and stored as uint8 against one level per evaluation
(``reference_level``, ``to_uint8``), so a case with little evidence for sarcoma shows little colour.

What it is not: a segmentation. At 224 px the grid is 7 × 7, one cell per 32 px of the crop; the map says
which part of the crop pushed the call towards sarcoma, not where the tumour's edge is (docs/saliency.md).
"""

from __future__ import annotations

import numpy as np

POOL_LAYER = "pool"
CHUNK = 256                 # crops whose activations are held at once (224 px: 256 × 7 × 7 × 1280 floats, 64 MB)
REFERENCE_PERCENTILE = 99.0
HEAD_LAYER = "sarcoma_vs_leiomyoma"
SARCOMA, LEIOMYOMA = 1, 0


def sarcoma_direction(model) -> tuple[np.ndarray, float]:
    """The head's weights of the sarcoma log-odds: ``(W[:, 1] − W[:, 0])`` (K,) and the bias difference."""
    kernel, bias = (np.asarray(v, dtype=np.float64) for v in model.get_layer(HEAD_LAYER).get_weights())
    return kernel[:, SARCOMA] - kernel[:, LEIOMYOMA], float(bias[SARCOMA] - bias[LEIOMYOMA])


def feature_model(model):
    """A model from the classifier's input to the last convolutional block's activations (the pooling layer's
    input: ``(S, S, 1)`` → ``(h, w, K)``), sharing the classifier's weights."""
    import keras

    return keras.Model(model.inputs[0], model.get_layer(POOL_LAYER).input, name=f"{model.name}_features")


def cam(features: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Signed per-cell shares of the sarcoma log-odds: ``(N, h, w, K)`` activations → ``(N, h, w)``."""
    features = np.asarray(features, dtype=np.float64)
    return (features @ direction) / float(features.shape[1] * features.shape[2])


def grad_cam(model, crops: np.ndarray, *, batch_size: int = 64, features=None, signed: bool = False) -> np.ndarray:
    """Grad-CAM of the sarcoma log-odds for each crop: ``(N, S, S)`` grey 0..255 → ``(N, h, w)`` float32 ≥ 0.

    ``features``: a ``feature_model(model)`` built already (a caller mapping many batches keeps one).
    ``signed``: the map before Grad-CAM's ReLU (an ensemble averages these, then keeps the positive part).
    The crops go through the network in chunks, so memory holds one chunk's activations, never all of them."""
    crops = np.asarray(crops)
    if crops.ndim == 3:
        crops = crops[..., None]
    if crops.ndim != 4 or crops.shape[-1] != 1:
        raise ValueError(f"crops: expected (N, S, S) grey slices, got shape {crops.shape}")
    expected = tuple(model.inputs[0].shape[1:3])
    if crops.shape[1:3] != expected:
        raise ValueError(f"crops are {crops.shape[1]}×{crops.shape[2]} px but the model takes "
                         f"{expected[0]}×{expected[1]}")
    features = feature_model(model) if features is None else features
    direction, _ = sarcoma_direction(model)
    if crops.shape[0] == 0:
        shape = features.outputs[0].shape
        return np.zeros((0, int(shape[1]), int(shape[2])), np.float32)
    # predict, not a plain call: Keras compiles the forward pass once per feature model (a graph on TensorFlow,
    # jit on JAX), and a WeightLoader keeps one feature model for every member (profiled: 1.3 s for 60 slices
    # at 224 px against 2.7–4.2 s called eagerly)
    out = []
    for start in range(0, crops.shape[0], CHUNK):
        activations = features.predict(crops[start:start + CHUNK].astype(np.float32), batch_size=batch_size,
                                       verbose=0)
        out.append(cam(np.asarray(activations), direction))
    maps = np.concatenate(out)
    return (maps if signed else np.maximum(maps, 0.0)).astype(np.float32)


class WeightLoader:
    """Models of one architecture read in turn: the first ``.keras`` file builds the network (and the feature
    model), each later one only loads its weights into it (a run's models share one architecture). So the one
    feature model's compiled forward pass serves every member; reading is a little cheaper too (measured on the
    real network here: 0.52 s for the weights against 0.60 s for the whole model)."""

    def __init__(self) -> None:
        self.model = None
        self.features = None
        self.reads = 0

    def load(self, path):
        import keras

        if self.model is None:
            self.model = keras.saving.load_model(path, compile=False)
            self.features = feature_model(self.model)
        else:
            self.model.load_weights(path)
        self.reads += 1
        return self.model

    def maps(self, path, crops: np.ndarray, *, batch_size: int = 64, signed: bool = False) -> np.ndarray:
        """The Grad-CAM maps of ``crops`` by the model in ``path`` (``grad_cam``)."""
        return grad_cam(self.load(path), crops, batch_size=batch_size, features=self.features, signed=signed)


def ensemble_map(member_maps) -> np.ndarray:
    """The ensemble's map: the positive part of the mean of its models' signed maps, ``(M, N, h, w)`` →
    ``(N, h, w)``. Averaging before the ReLU keeps the units: a cell's value is its share of the ensemble's mean
    log-odds, so where one model's evidence for sarcoma is outweighed by the others' against, nothing shows."""
    maps = np.asarray(member_maps, dtype=np.float64)
    if maps.ndim != 4 or maps.shape[0] == 0:
        raise ValueError(f"member maps: expected (models, slices, h, w) with at least one model, got {maps.shape}")
    return np.maximum(maps.mean(axis=0), 0.0).astype(np.float32)


def reference_level(maps: np.ndarray, *, percentile: float = REFERENCE_PERCENTILE) -> float | None:
    """The value shown at full colour for an evaluation: the ``percentile`` of the positive cells of its first
    mapped cases' ensemble maps (None where no cell is positive). One level for every case of the evaluation,
    so a case with little evidence for sarcoma (a leiomyoma call) shows faint or no colour, not full red."""
    values = np.asarray(maps, dtype=np.float64).ravel()
    values = values[values > 0]
    return float(np.percentile(values, percentile)) if values.size else None


def upsample(maps: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of ``(N, h, w)`` maps to ``(N, size, size)``, cell centres on pixel centres (Pillow's
    float image), the way the grid sits on the crop: cell (i, j) covers pixels i·S/h … (i+1)·S/h."""
    from PIL import Image

    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps: expected (N, h, w), got shape {maps.shape}")
    out = np.empty((maps.shape[0], size, size), np.float32)
    for i, grid in enumerate(maps):
        out[i] = np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BILINEAR))
    return np.maximum(out, 0.0)


def to_uint8(maps: np.ndarray, reference: float | None = None) -> tuple[np.ndarray, float]:
    """Maps ≥ 0 as uint8: ``(maps_u8, scale)``, ``value ≈ maps_u8 · scale / 255`` (clipped at 255 above it).

    ``reference``: the value shown at 255 (the evaluation's ``reference_level``); None: the maps' own maximum.
    A map with no positive value, or no reference, gets zeros (scale 0: the ensemble found nothing)."""
    maps = np.asarray(maps, dtype=np.float64)
    top = float(maps.max()) if maps.size else 0.0
    if not np.isfinite(top):
        raise ValueError("maps: not finite")
    scale = top if reference is None else float(reference)
    if top <= 0.0 or not scale > 0.0:
        return np.zeros(maps.shape, np.uint8), 0.0
    return np.clip(np.rint(maps / scale * 255.0), 0, 255).astype(np.uint8), scale


def peak(grid: np.ndarray, size: int) -> tuple[float, float]:
    """Where a map points, in the crop's pixels (x, y): the centre of its strongest grid cell.

    Taken on the h × w grid, not the upsampled map: an edge cell's value is flat from its centre out to the
    crop's border once upsampled, so the upsampled map's first maximum would sit on the border."""
    grid = np.asarray(grid)
    row, col = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return (col + 0.5) * size / grid.shape[1], (row + 0.5) * size / grid.shape[0]


POINTING_TOLERANCE_224 = 15.0   # the pointing game's tolerance in pixels at 224 px (Zhang et al. 2016)


def pointing_hit(grid: np.ndarray, box, size: int, *, tolerance: float | None = None) -> bool:
    """The pointing game (Zhang et al. 2016): does the map's peak (``peak``) fall within ``tolerance`` pixels
    of ``box`` (x0, y0, x1, y1 in the crop's pixels)? ``grid``: the map on its h × w grid (``grad_cam``);
    ``size``: the crop's side. ``tolerance`` None: the game's 15 px at 224 px, scaled to ``size``. A map that is
    zero everywhere points nowhere: a miss."""
    grid = np.asarray(grid)
    if not np.any(grid > 0):
        return False
    if tolerance is None:
        tolerance = POINTING_TOLERANCE_224 * size / 224.0
    x, y = peak(grid, size)
    x0, y0, x1, y1 = box
    return bool(np.hypot(max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1)) <= tolerance)


def randomized_copy(model, *, seed: int = 0):
    """The model with every weight tensor's values shuffled (Adebayo et al. 2018's model randomization, keeping
    each tensor's distribution so activations keep their scale): same architecture, no learned structure."""
    import keras

    rng = np.random.default_rng(seed)
    copy = keras.models.clone_model(model)
    copy.set_weights([rng.permutation(np.asarray(w).ravel()).reshape(np.shape(w)) for w in model.get_weights()])
    return copy


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps' pixels (Adebayo et al. 2018 compare maps this way); 0 where
    either map is constant (no ranking to compare)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"maps of different sizes: {a.size} and {b.size} pixels")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)
