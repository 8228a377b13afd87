"""Horizontally fused training (issue 16): N models of one architecture trained in one compiled step. No Django.

The 144-model protocol trains the same network 144 times; at the paper's batch of 32 one MobileNetV2 leaves
most of a GPU idle. Horizontal fusion (Wang et al., "Horizontally Fused Training Array", MLSys 2021) trains N
such models as one network: here one Keras model with N inputs and N outputs whose members are N copies of
`training.network.build_model`'s network, side by side, trained on the sum of the N losses by one AMSGrad.

**The same as training the N models apart** (fp32; `tests/training/test_training_fused.py` checks it to float
tolerance): the members share no layer, so the gradient of the summed loss with respect to member k's weights
is member k's own gradient; Adam/AMSGrad update every variable from its own gradient and its own slots only
(elementwise, no global norm); each member's BatchNorm layers keep their own statistics from their own batches;
each member's augmentation layers keep their own seeds and streams. Each member is fed its own batches (its
own fold's patients, its own seed: `FusedDataset`). What would break it: a *global* gradient operation —
`global_clipnorm`, or a dynamic loss scale under mixed precision, which skips a step for every member when
one overflows. Neither is used in fp32; under bf16 (no loss scale) the members stay independent but are no
longer bit-comparable with fp32 runs, which is why the equivalence tests run in fp32.

**Why members side by side, not one network of grouped convolutions.** Members stay plain Keras models, so
each one saves as today's `.keras` file (`member_checkpoint`: weights *and* its own optimizer state, copied
out of the fused optimizer), which `training.fit`'s resume, inference and the model cards read unchanged. The
compiled step holds all N members' graphs; XLA (JAX, or TensorFlow with `jit_compile`) schedules them as one
program. Whether that reaches the issue's 3x on a GPU or grouped convolutions (`groups=N` over channel-stacked
inputs) are needed is what `benchmarks/train_throughput.py --fuse N` measures; on the CPU here the figures
are in docs/training.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from training.network import TrainingConfig

MEMBER_NAME = "mobilenetv2_sarcoma_m{k}"


def build_fused(config: TrainingConfig, seeds: Sequence[int]):
    """The fused network of ``len(seeds)`` members and the members themselves: ``(fused, members)``.

    Member k is ``build_model(config, seed=seeds[k])`` built right after ``keras.utils.set_random_seed(seeds[k])``,
    so its initial weights and augmentation streams are those of the same model trained alone; it keeps its own
    compiled optimizer (for its checkpoint). ``fused`` takes a tuple of N batches of grey slices and returns N
    softmax outputs, compiled with AMSGrad at ``config.learning_rate`` on the sum of the N losses.
    """
    import keras

    from training.network import build_model

    if len(seeds) < 1:
        raise ValueError("a fused group needs at least one model")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"every member needs its own seed, got {list(seeds)}")
    members = []
    for k, seed in enumerate(seeds):
        keras.utils.set_random_seed(int(seed))
        members.append(build_model(config, seed=int(seed), name=MEMBER_NAME.format(k=k)))
    return _assemble(members, config), members


def fuse_members(members: Sequence, config: TrainingConfig, *, optimizer_from=None):
    """The fused network of existing members (loaded from their checkpoints, or the survivors of a group one
    of whose members was dropped), its optimizer state taken from each member's own optimizer or, with
    ``optimizer_from``, from the fused optimizer they were trained with: training goes on exactly where it was."""
    for k, member in enumerate(members):                 # unique names inside the fused model
        member.name = MEMBER_NAME.format(k=k)
    fused = _assemble(members, config)
    target = fused.optimizer
    target.build(fused.trainable_variables)
    source_of = {id(m): (optimizer_from or m.optimizer) for m in members}
    for member in members:
        source = source_of[id(member)]
        if source is None or not source.built:
            continue                                     # a fresh member: nothing to carry over
        target.iterations.assign(source.iterations)
        _copy_slots(source, target, member.trainable_variables)
    return fused


def _assemble(members, config: TrainingConfig):
    """One model over the members, compiled on the sum of their losses; XLA as ``config.xla`` says (on "auto"
    it follows the members, whose augmentation layers `apply_compile_options` cleared for XLA on JAX)."""
    import keras

    from training.network import apply_compile_options

    for member in members:
        apply_compile_options(member, config)
    size = config.input_size
    inputs = [keras.Input(shape=(size, size, 1), name=f"slice_grey_0_255_m{k}") for k in range(len(members))]
    outputs = [member(x) for member, x in zip(members, inputs, strict=True)]
    fused = keras.Model(inputs, outputs, name=f"fused_{len(members)}_mobilenetv2_sarcoma")
    fused.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate, amsgrad=True),
                  loss=[config.loss] * len(members), metrics=[["accuracy"] for _ in members],
                  run_eagerly=config.run_eagerly, jit_compile={"on": True, "off": False}.get(config.xla, "auto"))
    return fused


def _copy_slots(source, target, variables) -> None:
    """Adam's slots of ``variables`` from one optimizer to another, through each side's variable index."""
    slots = [name for name in ("_momentums", "_velocities", "_velocity_hats") if getattr(source, name, None)]
    for variable in variables:
        i, j = source._get_variable_index(variable), target._get_variable_index(variable)
        for name in slots:
            getattr(target, name)[j].assign(getattr(source, name)[i])


class FusedBatches:
    """Each member's own batches, step by step: member k's sampler (its fold's training patients, its seed).

    ``batch(epoch, step)`` -> ``(tuple of N image batches, tuple of N label batches)``, what ``fused`` trains on.
    Every sampler must give the same number of steps per epoch (the same batch size and samples per epoch).
    """

    def __init__(self, samplers: Sequence):
        steps = {s.steps_per_epoch for s in samplers}
        if len(steps) != 1:
            raise ValueError(f"the members' samplers give different steps per epoch: {sorted(steps)}")
        self.samplers = list(samplers)
        self.steps_per_epoch = steps.pop()

    def batch(self, epoch: int, step: int):
        pairs = [s.batch(epoch, step) for s in self.samplers]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def fused_dataset(batches: FusedBatches, *, epoch: int = 0, workers: int = 1):
    """A keras.utils.PyDataset over ``batches`` (every backend), like ``training.sampling.as_keras_dataset``."""
    from training.sampling import as_keras_dataset

    return as_keras_dataset(batches, epoch=epoch, workers=workers)


def reset_member_streams(members, epoch: int) -> None:
    """``training.augment.reset_augmentation_streams`` for every member (each keeps its own seeds)."""
    from training.augment import reset_augmentation_streams

    for member in members:
        reset_augmentation_streams(member, epoch)


def member_checkpoint(fused, member) -> None:
    """Copy the fused optimizer's state for ``member``'s variables into the member's own optimizer, so that
    ``member.save(path)`` writes the checkpoint this member would have if it had been trained alone: its weights,
    its BatchNorm statistics, its AMSGrad moments and step count (``training.fit`` resumes from it unchanged).

    Keras keeps Adam's slots in lists indexed by ``optimizer._get_variable_index(variable)``; the copy goes
    through that index on both sides (a private but stable part of Keras 3's optimizer; the test of the
    checkpoint fails if it moves)."""
    source, target = fused.optimizer, member.optimizer
    if not target.built:
        target.build(member.trainable_variables)
    target.iterations.assign(source.iterations)
    _copy_slots(source, target, member.trainable_variables)
