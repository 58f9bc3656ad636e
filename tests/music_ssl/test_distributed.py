"""gather_distributed under real DistributedDataParallel: two gloo processes on the CPU.

With DDP's gradient averaging, every parameter gradient must equal that of one process that sees the
concatenated batch, for equal and for unequal per-rank batch sizes, also with an empty rank.
"""

import os

import pytest
import torch
import torch.distributed as dist
from torch import nn

from music_ssl import MUSICLoss, distributed, implementations
from tests.music_ssl import implementations_under_test
from tests.process_group import free_port, join_process_group, leave_process_group, run_processes

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(not dist.is_available(), reason="torch was built without torch.distributed"),
]


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 48))


def _data(batch_size: int, num_views: int = 2) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return [torch.randn(batch_size, 12, generator=generator) for _ in range(num_views)]


# Multi-crop: two global views and three local ones, every pair with a global view in the loss.
MULTI_CROP = {"num_views": 5, "num_global": 2}


def _loss_function(kind: str, implementation: str):
    """The loss's terms as each host computes them: the core with True, "auto" or its default, solo-learn's
    pure function; ``implementation`` one of `implementations_under_test.ways`."""
    options = implementations_under_test.options(implementation)
    if kind == "solo_learn":
        from music_ssl.integrations.solo_learn.losses import music_loss_terms_func

        return lambda z_a, z_b: music_loss_terms_func(
            z_a, z_b, segment_dim=8, temperature=0.7, implementation=options["implementation"]
        )
    if kind == "multi_crop":
        loss_fn = MUSICLoss(segment_dim=8, temperature=0.7, **options)
        return lambda *z: loss_fn.terms(list(z), num_global=MULTI_CROP["num_global"])
    if kind == "core_default":
        return MUSICLoss(segment_dim=8, temperature=0.7, **options).terms
    gather = {"core": True, "core_auto": "auto"}[kind]
    return MUSICLoss(segment_dim=8, temperature=0.7, gather_distributed=gather, **options).terms


def _worker(rank, world_size, port, sizes, implementation, out_dir, kind="core"):
    torch.set_num_threads(1)
    join_process_group(rank, world_size, port)
    model = nn.parallel.DistributedDataParallel(_model())
    views = _data(sum(sizes), MULTI_CROP["num_views"] if kind == "multi_crop" else 2)
    start = sum(sizes[:rank])
    rows = slice(start, start + sizes[rank])
    terms = _loss_function(kind, implementation)
    out = terms(*(model(x[rows]) for x in views))
    out.loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    torch.save(
        {
            "grads": grads,
            "loss": out.loss.detach(),
            "diag": out.diag,
            "off": out.off,
            "inv": out.inv,
        },
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    leave_process_group()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sizes", [(6, 6), (7, 3), (5, 0, 4)], ids=["equal", "unequal", "one-empty"])
@pytest.mark.parametrize("implementation", implementations_under_test.ways(interpreted=False))
def test_ddp_gradients_equal_single_process_on_concatenated_batch(
    tmp_path, sizes, implementation, kind="core"
):
    """Also with a rank that holds no sample (the uneven last batch of drop_last=False): its loss is
    finite, and the mean loss over ranks is the loss of the concatenated batch."""
    world_size = len(sizes)
    run_processes(
        _worker,
        args=(world_size, free_port(), sizes, implementation, str(tmp_path), kind),
        nprocs=world_size,
    )

    model = _model()
    loss_fn = MUSICLoss(segment_dim=8, temperature=0.7, implementation="reference")
    if kind == "multi_crop":
        views = _data(sum(sizes), MULTI_CROP["num_views"])
        expected = loss_fn.terms([model(x) for x in views], num_global=MULTI_CROP["num_global"])
    else:
        x_a, x_b = _data(sum(sizes))
        expected = loss_fn.terms(model(x_a), model(x_b))
    expected.loss.backward()

    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world_size)]
    losses = torch.stack([result["loss"] for result in results])
    assert torch.isfinite(losses).all()
    torch.testing.assert_close(losses.mean(), expected.loss.detach(), rtol=1e-5, atol=1e-6)
    invariances = torch.stack([result["inv"] for result in results])
    torch.testing.assert_close(invariances.mean(), expected.inv, rtol=1e-5, atol=1e-6)
    for result in results:
        torch.testing.assert_close(result["diag"], expected.diag, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result["off"], expected.off, rtol=1e-5, atol=1e-6)
        # What a rank returns adds up: its loss is the weighted sum of its terms, also for uneven batches.
        torch.testing.assert_close(
            result["loss"], result["diag"] + result["off"] + result["inv"], rtol=1e-6, atol=1e-6
        )
        for got, param in zip(result["grads"], model.parameters(), strict=True):
            torch.testing.assert_close(got, param.grad, rtol=1e-4, atol=1e-6)


def _mismatched_worker(rank, world_size, port, per_rank, out_dir):
    torch.set_num_threads(1)
    join_process_group(rank, world_size, port)
    mine = per_rank[rank]
    views = [torch.randn(4, mine["dim"], dtype=mine["dtype"]) for _ in range(mine.get("views", 2))]
    z_a, z_b = views[0], views[1]
    loss_fn = MUSICLoss(
        segment_dim=mine["segment_dim"],
        temperature=mine["temperature"],
        gather_distributed=mine.get("gather", True),
        implementation=mine["implementation"],
        exchange=mine.get("exchange", "auto"),
    )
    try:
        if len(views) == 2:
            loss_fn(z_a.requires_grad_(), z_b)
        else:
            loss_fn([z_a.requires_grad_(), *views[1:]], num_global=mine["num_global"])
        message = "no error"
    except ValueError as error:
        message = str(error)
    with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
        f.write(message)
    leave_process_group()  # its barrier: the ranks are still in step, nothing was left in a collective


# How the agreement check names the call's views (two, both global) before its other numbers.
VIEWS0, VIEWS1 = "rank 0: views=2, global views=2, ", "rank 1: views=2, global views=2, "
SAME = {"dim": 32, "segment_dim": 8, "dtype": torch.float32, "temperature": 1.0, "implementation": "chunked"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("rank1", "shown"),
    [
        ({"segment_dim": 16}, VIEWS0 + "dim=32, dtype=torch.float32, segment_dim=8, temperature=1"),
        ({"dim": 64}, VIEWS1 + "dim=64, dtype=torch.float32, segment_dim=8"),
        ({"dtype": torch.float64}, VIEWS1 + "dim=32, dtype=torch.float64, segment_dim=8"),
        ({"temperature": 0.5}, VIEWS1 + "dim=32, dtype=torch.float32, segment_dim=8, temperature=0.5"),
        (
            {"implementation": "reference", "segment_dim": 4},
            VIEWS1 + "dim=32, dtype=torch.float32, segment_dim=4",
        ),
        # The reference gathers inside autograd (a backward all_reduce), the fused ones outside: a mix
        # used to pass the check and hang in backward.
        (
            {"implementation": "reference"},
            VIEWS1 + "dim=32, dtype=torch.float32, segment_dim=8, temperature=1, "
            "diag_weight=1, off_weight=1, inv_weight=1, gather_distributed=True, exchange='auto', "
            "implementation='reference'",
        ),
        # Ranks that exchange differently would wait on collectives of different kinds and sizes.
        (
            {"exchange": "reduce"},
            VIEWS1 + "dim=32, dtype=torch.float32, segment_dim=8, temperature=1, "
            "diag_weight=1, off_weight=1, inv_weight=1, gather_distributed=True, exchange='reduce'",
        ),
        # As written: "auto" and True gather alike with gradients, but only True gathers without them.
        (
            {"gather": "auto"},
            VIEWS1 + "dim=32, dtype=torch.float32, segment_dim=8, temperature=1, "
            "diag_weight=1, off_weight=1, inv_weight=1, gather_distributed='auto'",
        ),
        # A rank with a third (local) view would estimate other pairs' joints.
        ({"views": 3, "num_global": 2}, "rank 1: views=3, global views=2, dim=32, dtype=torch.float32"),
    ],
    ids=[
        "segment_dim",
        "dim",
        "dtype",
        "temperature",
        "across_implementations",
        "implementation",
        "exchange",
        "gather",
        "views",
    ],
)
def test_ranks_that_disagree_get_the_same_clear_error(tmp_path, rank1, shown):
    """Different segment_dim (same D) would silently average gradients of different joints, a different D
    or dtype would abort inside gloo: every rank raises a ValueError that names each rank's values."""
    per_rank = [SAME, {**SAME, **rank1}]
    run_processes(_mismatched_worker, args=(2, free_port(), per_rank, str(tmp_path)), nprocs=2)
    for rank in range(2):
        message = (tmp_path / f"rank{rank}.txt").read_text()
        assert message.startswith("The MUSIC loss estimates one joint over the batches of every rank")
        assert shown in message, message


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["core_auto", "core_default", "solo_learn"])
def test_the_hosts_policy_gathers_whenever_several_processes_train(tmp_path, kind):
    """gather_distributed="auto" (the default, and what every adapter passes) estimates the joint over the
    global batch under DDP, as the authors train: the same gradients as one process on the concatenated
    batch."""
    test_ddp_gradients_equal_single_process_on_concatenated_batch(tmp_path, (7, 3), "chunked", kind)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sizes", [(7, 3), (5, 0, 4)], ids=["unequal", "one-empty"])
@pytest.mark.parametrize("implementation", implementations_under_test.ways(interpreted=False))
def test_multi_crop_joints_are_over_the_global_batch(tmp_path, sizes, implementation):
    """Two global and three local views: the joint of every pair is over the group's batch, and DDP's
    gradients are those of one process on the concatenated batch, for uneven ranks and an empty one."""
    test_ddp_gradients_equal_single_process_on_concatenated_batch(
        tmp_path, sizes, implementation, "multi_crop"
    )


def _one_rank_evaluates(rank, world_size, port, gather, out_dir):
    torch.set_num_threads(1)
    join_process_group(rank, world_size, port, wait_seconds=15)
    if rank == 0:  # a rank-0-only evaluation or logging batch, under no_grad
        z_a, z_b = _data(8)
        loss_fn = MUSICLoss(segment_dim=4, gather_distributed=gather)
        with torch.no_grad():
            got = loss_fn(z_a, z_b)
        torch.save(got, os.path.join(out_dir, "rank0.pt"))
    leave_process_group()


@pytest.mark.timeout(120)
def test_a_call_without_gradients_on_one_rank_returns_at_once_under_the_default(tmp_path):
    """ "auto" gathers only when autograd needs the global joint: an evaluation batch on rank 0 alone runs
    no collective (it waited for the other rank's all_gather until the group's timeout) and equals the
    loss of rank 0's own batch."""
    run_processes(_one_rank_evaluates, args=(2, free_port(), "auto", str(tmp_path)), nprocs=2)
    z_a, z_b = _data(8)
    expected = MUSICLoss(segment_dim=4, gather_distributed=False)(z_a, z_b)
    torch.testing.assert_close(torch.load(tmp_path / "rank0.pt"), expected)


GROUPS = ([0, 1], [2, 3])


def _group_worker(rank, world_size, port, groups, sizes, implementation, out_dir):
    """``groups``: the ranks of each data-parallel group; ``sizes[g]``: the batch of each rank of group g."""
    torch.set_num_threads(1)
    join_process_group(rank, world_size, port, wait_seconds=60)
    made = [dist.new_group(ranks) for ranks in groups]  # every rank creates every group, as torch asks
    index = next(i for i, ranks in enumerate(groups) if rank in ranks)
    group, position = made[index], groups[index].index(rank)
    model = nn.parallel.DistributedDataParallel(_model(), process_group=group)
    x_a, x_b = _group_data(index, sizes[index])
    start = sum(sizes[index][:position])
    rows = slice(start, start + sizes[index][position])
    options = implementations_under_test.options(implementation)
    loss_fn = MUSICLoss(segment_dim=8, temperature=0.7, process_group=group, **options)
    out = loss_fn.terms(model(x_a[rows]), model(x_b[rows]))
    out.loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    torch.save({"grads": grads, "loss": out.loss.detach()}, os.path.join(out_dir, f"rank{rank}.pt"))
    leave_process_group()


def _group_data(index: int, sizes: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(10 + index)  # each replica its own data
    n = sum(sizes)
    return torch.randn(n, 12, generator=generator), torch.randn(n, 12, generator=generator)


def _check_groups(tmp_path, groups, sizes, implementation):
    world_size = sum(len(ranks) for ranks in groups)
    run_processes(
        _group_worker,
        args=(world_size, free_port(), groups, sizes, implementation, str(tmp_path)),
        nprocs=world_size,
    )
    for index, ranks in enumerate(groups):
        model = _model()
        x_a, x_b = _group_data(index, sizes[index])
        loss_fn = MUSICLoss(segment_dim=8, temperature=0.7, implementation="reference")
        expected = loss_fn(model(x_a), model(x_b))
        expected.backward()
        results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in ranks]
        losses = torch.stack([result["loss"] for result in results])
        torch.testing.assert_close(losses.mean(), expected.detach(), rtol=1e-5, atol=1e-6)
        for result in results:
            for got, param in zip(result["grads"], model.parameters(), strict=True):
                torch.testing.assert_close(got, param.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sizes", [((6, 6), (6, 6)), ((7, 3), (2, 9))], ids=["equal", "unequal"])
@pytest.mark.parametrize("implementation", implementations_under_test.ways(interpreted=False))
def test_the_joint_and_the_gradients_are_those_of_the_process_group(tmp_path, sizes, implementation):
    """Four processes in two data-parallel groups of two: every group's loss and gradients are those of
    one process on the group's concatenated batch (the world's batch would mix in the other group's)."""
    _check_groups(tmp_path, GROUPS, sizes, implementation)


hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (in music-ssl[test])")
st = hypothesis.strategies


@st.composite
def group_cases(draw):
    """Four processes as one group or two groups of two (in either order of ranks), uneven batches with
    empty ranks, at least two samples in every group."""
    groups = draw(st.sampled_from([([0, 1, 2, 3],), ([0, 1], [2, 3]), ([0, 2], [1, 3])]))
    sizes = tuple(
        draw(
            st.lists(st.integers(0, 6), min_size=len(ranks), max_size=len(ranks)).filter(
                lambda s: sum(s) >= 2
            )
        )
        for ranks in groups
    )
    return groups, sizes, draw(st.sampled_from(implementations_under_test.ways(interpreted=False)))


@pytest.mark.timeout(600)
@hypothesis.settings(max_examples=4, deadline=None, derandomize=True, database=None)
@hypothesis.given(case=group_cases())
def test_drawn_groups_and_uneven_ranks_match_one_process_per_group(tmp_path_factory, case):
    groups, sizes, implementation = case
    _check_groups(tmp_path_factory.mktemp("groups"), groups, [tuple(s) for s in sizes], implementation)


def _placeholder_worker(rank, world_size, port, out_dir, implementation):
    torch.set_num_threads(1)
    join_process_group(rank, world_size, port, wait_seconds=15)
    z_a, z_b = _data(8)
    loss_fn = MUSICLoss(segment_dim=4, **implementations_under_test.options(implementation))
    if rank == 0:
        loss = loss_fn(z_a.requires_grad_(), z_b)
        loss.backward()
        torch.save((loss.detach(), z_a.grad), os.path.join(out_dir, "rank0.pt"))
    else:  # an empty rank's placeholder, which requires no grad, in the same training step
        loss_fn(torch.empty(0, 12), torch.empty(0, 12))
    leave_process_group()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("implementation", implementations_under_test.ways(interpreted=False))
def test_the_default_decides_by_grad_mode_so_an_empty_placeholder_rank_still_gathers(
    tmp_path, implementation
):
    """Every rank of a training step gathers, whether or not its views require grad: a rank that passes an
    empty placeholder would otherwise skip the exchange and leave the others waiting. Its step has no
    backward pass, so no implementation may run a collective there: rank 0's backward finishes."""
    args = (2, free_port(), str(tmp_path), implementation)
    run_processes(_placeholder_worker, args=args, nprocs=2)
    z_a, z_b = _data(8)
    expected = MUSICLoss(segment_dim=4, gather_distributed=False)(z_a, z_b)
    # Rank 0 holds the whole global batch; with an empty rank 1 its loss is the global loss, doubled in
    # the invariance share as DDP's average over the two ranks halves it, and so is its gradient.
    got, got_grad = torch.load(tmp_path / "rank0.pt")
    assert torch.isfinite(got)
    z_a.requires_grad_()
    single = MUSICLoss(segment_dim=4, gather_distributed=False).terms(z_a, z_b)
    torch.testing.assert_close(got, single.diag + single.off + 2 * single.inv)
    assert not torch.isclose(got, expected)  # the share of a gathered call, not a local estimate
    (want_grad,) = torch.autograd.grad(2 * single.loss, z_a)  # what DDP's average over two ranks halves
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-5, atol=1e-6)


def _exchange_worker(rank, world_size, port, implementation, exchange, out_dir, rows=10, dim=48):
    """Records the size of every collective one training step of the loss runs, forward and backward."""
    torch.set_num_threads(1)
    join_process_group(rank, world_size, port, wait_seconds=30)
    sent: list[tuple[str, int]] = []
    all_gather, all_reduce = dist.all_gather, dist.all_reduce

    def gather_spy(parts, tensor, *args, **kwargs):
        sent.append(("all_gather", tensor.numel()))
        return all_gather(parts, tensor, *args, **kwargs)

    def reduce_spy(tensor, *args, **kwargs):
        sent.append(("all_reduce", tensor.numel()))
        return all_reduce(tensor, *args, **kwargs)

    dist.all_gather, dist.all_reduce = gather_spy, reduce_spy
    generator = torch.Generator().manual_seed(rank)
    views = [torch.randn(rows + rank, dim, generator=generator, requires_grad=True) for _ in range(3)]
    loss = MUSICLoss(segment_dim=8, implementation=implementation, exchange=exchange)(views, num_global=2)
    loss.backward()
    torch.save(sent, os.path.join(out_dir, f"rank{rank}.pt"))
    leave_process_group()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("implementation", implementations_under_test.names(interpreted=False))
def test_reduce_exchanges_the_joints_sums_and_gather_the_rows(tmp_path, implementation):
    """Per step and rank, exchange="gather" receives every rank's rows of every view; exchange="reduce"
    sends one D x D sum per pair of views (the reference in one all_reduce, the fused operator one pair
    at a time, so that it holds one pair's joint), whatever the batch: the ranks' layouts aside (one
    small all_gather), nothing of size N x D travels, and nothing at all in the backward pass."""
    dim, pairs, layout = 48, 3, 1 + len(distributed.LAYOUT_FIELDS)
    for exchange in ("gather", "reduce"):
        out = tmp_path / exchange
        out.mkdir()
        args = (2, free_port(), implementation, exchange, str(out))
        run_processes(_exchange_worker, args=args, nprocs=2)
        for rank in range(2):
            sent = torch.load(out / f"rank{rank}.pt")
            if exchange == "gather":  # the rows of every view, padded to the longest rank's 11
                assert sent == [("all_gather", layout), ("all_gather", 11 * 3 * dim)]
            elif not implementations.REGISTRY[implementation].fused:  # the reference: one all_reduce
                assert sent == [("all_gather", layout), ("all_reduce", pairs * dim * dim)]
            else:
                assert sent == [("all_gather", layout), *[("all_reduce", dim * dim)] * pairs]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("rows", "expected"), [(10, "gather"), (16, "reduce")])
def test_auto_reduces_where_the_rows_outweigh_the_joints(tmp_path, rows, expected):
    """exchange="auto" (the default) with three views of width 16, two global (three pairs): the reduce
    moves no more bytes once N x 3 >= 2 x 3 x 16, so 21 samples gather and 33 reduce; every rank
    decides the same from the batch sizes it has received."""
    run_processes(
        _exchange_worker,
        args=(2, free_port(), "chunked", "auto", str(tmp_path), rows, 16),
        nprocs=2,
    )
    for rank in range(2):
        kinds = [kind for kind, _ in torch.load(tmp_path / f"rank{rank}.pt")][1:]
        assert kinds == (["all_gather"] if expected == "gather" else ["all_reduce"] * 3)


def test_the_crossover_of_auto():
    """Where the reduce starts: N V >= 2 P D."""
    assert distributed.cheaper_exchange(8159, 2, 1, 8160) == "gather"
    assert distributed.cheaper_exchange(8160, 2, 1, 8160) == "reduce"
    # Multi-crop, 2 global views and 6 local: 13 pairs, 8 views.
    assert distributed.cheaper_exchange(26520, 8, 13, 8160) == "reduce"
    assert distributed.cheaper_exchange(26519, 8, 13, 8160) == "gather"
