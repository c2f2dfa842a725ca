"""Distributed training: cross-replica batch norm, global batch sizes, sharding, and a two-node launch.

The DDP runs of each model (`trainer=ddp_cpu`, two real gloo processes) live with the model's end-to-end
tests and check, through :mod:`tests.replicas`, that both ranks end with identical weights.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ganzoo.data.sampler import EpochShuffleSampler
from ganzoo.data.unpaired import UnpairedImageFolderDataModule
from ganzoo.errors import ConfigError
from ganzoo.nets.layers import BatchNorm, ClassConditionalBatchNorm, ClassEmbedding
from ganzoo.nets.sync_batchnorm import CrossReplicaBatchNorm2d, local_statistics, set_cross_replica
from tests.conftest import QUIET, REPO, cli_env
from tests.replicas import assert_replicas_identical, replica_overrides


def _norm_layers() -> nn.ModuleDict:
    torch.manual_seed(0)
    layers = nn.ModuleDict(
        {
            "torch": nn.BatchNorm2d(3, momentum=0.3),
            "biggan": BatchNorm(3, momentum=0.3),
            "ccbn": ClassConditionalBatchNorm(3, 4, ClassEmbedding),
        }
    )
    for p in layers.parameters():  # not the identity init, so gains and biases matter
        nn.init.normal_(p, 1.0, 0.5)
    return layers


def _run_norms(layers: nn.ModuleDict, x: torch.Tensor, y: torch.Tensor, part: slice = slice(None)) -> dict:
    """Forward and backward of images ``x[part]`` through each layer: outputs and input gradients (per image),
    parameter gradients, and the state (statistics) after the step. The loss weights each output element as
    the whole batch's loss would, so a share of the batch gets its share of the gradient."""
    results = {}
    for name, layer in layers.items():
        inp = x[part].clone().requires_grad_(True)
        out = layer(inp) if name == "torch" else layer(inp, y[part])
        (out * torch.linspace(-1, 2, x.numel()).view_as(x)[part]).sum().backward()
        results[f"{name}.out"], results[f"{name}.input_grad"] = out.detach(), inp.grad
        for key, value in layer.state_dict().items():
            results[f"{name}.{key}"] = value.clone()
        for key, p in layer.named_parameters():
            results[f"{name}.{key}.grad"] = p.grad.clone()
    return results


def _sync_worker(rank: int, init_file: str, x: torch.Tensor, y: torch.Tensor, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    layers = set_cross_replica(_norm_layers(), True)
    # Uneven shares (5 and 3 images): the statistics still cover all 8.
    part = slice(0, 5) if rank == 0 else slice(5, 8)
    results = _run_norms(layers, x, y, part)
    with local_statistics(layers):
        results["local.out"] = layers["torch"](x[part]).detach()
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_cross_replica_batch_norm_equals_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    x = torch.randn(8, 3, 4, 4) * 3 + 5
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    mp.spawn(_sync_worker, args=(str(tmp_path / "init"), x, y, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    whole = _run_norms(_norm_layers(), x, y)
    assert isinstance(set_cross_replica(_norm_layers(), True)["torch"], CrossReplicaBatchNorm2d)
    for key, expected in whole.items():
        if key.endswith((".out", ".input_grad")):
            got = torch.cat([ranks[0][key], ranks[1][key]])  # per image: each rank holds its share
        elif key.endswith(".grad"):
            got = ranks[0][key] + ranks[1][key]  # parameter gradients: DDP reduces them over the ranks
        else:
            got = ranks[0][key]  # statistics: those of the whole batch, on every rank
            assert torch.equal(ranks[1][key], got), key
        assert torch.allclose(got.float(), expected.float(), atol=1e-5, rtol=1e-5), key
    # With the switch off (sampling on one process), a rank normalizes by its own images only.
    assert not torch.allclose(ranks[0]["local.out"], ranks[0]["torch.out"], atol=1e-3)


def test_batch_sizes_are_global_and_must_split_over_the_processes(tmp_path: Path) -> None:
    from ganzoo.models.biggan import BigGAN
    from ganzoo.nets.biggan import BigGANDiscriminator, BigGANGenerator

    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    assert trainer.world_size == 2
    data = UnpairedImageFolderDataModule(str(tmp_path), image_size=8, load_size=8, channels=3, batch_size=6)
    data.trainer = trainer
    assert data.process_batch_size == 3
    data.batch_size = 5
    with pytest.raises(ConfigError, match="data.batch_size=5 is the batch of all 2 processes.*multiple of 2"):
        data.process_batch_size  # noqa: B018

    generator = BigGANGenerator(resolution=32, channels=1, ch=4, dim_z=8, n_classes=2)
    model = BigGAN(generator, BigGANDiscriminator(resolution=32, channels=1, ch=4, n_classes=2), batch_size=3)
    model.trainer = trainer
    with pytest.raises(ConfigError, match="model.batch_size=3 is the batch of all 2 processes"):
        model.on_before_batch_transfer((torch.zeros(3, 1, 32, 32), torch.zeros(3, dtype=torch.long)), 0)


def test_unpaired_items_do_not_depend_on_the_number_of_processes(tmp_path: Path) -> None:
    from tests.data.writers import write_unpaired_folders

    root = write_unpaired_folders(tmp_path / "h2z", n_train_a=7, n_train_b=4)
    data = UnpairedImageFolderDataModule(str(root), image_size=8, load_size=8, channels=3, seed=3)
    data.setup()
    dataset = data.train_set
    one = list(EpochShuffleSampler(len(dataset), seed=3))
    shards = [list(EpochShuffleSampler(len(dataset), seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    # 7 items over 2 processes: 4 each, the 8th wraps around to the first item of the permutation.
    assert len(shards[0]) == len(shards[1]) == 4
    assert sorted(shards[0] + shards[1]) == sorted([*one, one[0]])
    # An item's domain-B partner and its crops depend only on its key, never on how many processes share them.
    picks = {key: dataset.pick(key) for key in one}
    assert all(dataset.pick(key) == picks[key] for shard in shards for key in shard)
    assert len({picks[key][1][0] for key in one}) > 1  # B partners are drawn, not aligned with A


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_launched_by_torchrun_train_identical_replicas(tiny_data_dir: Path, tmp_path: Path) -> None:
    """`trainer=ddp_multinode` as the README launches it: one torchrun per node (here two on one machine, one
    CPU process each), with synchronized batch norm; both ranks end with identical weights and statistics."""
    run_dir, replicas = tmp_path / "run", tmp_path / "replicas"
    port = _free_port()
    overrides = (
        "trainer=ddp_multinode", "trainer.num_nodes=2", "trainer.devices=1", "trainer.sync_batchnorm=true",
        *QUIET, "~metrics", "data.batch_size=16", "model.generator.ngf=8", "model.discriminator.ndf=8",
        f"hydra.run.dir={run_dir}", *replica_overrides(replicas),
    )  # fmt: skip
    env = cli_env(tiny_data_dir, OMP_NUM_THREADS="1")
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc-per-node=1",
                f"--node-rank={rank}",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                "-m",
                "ganzoo.train",
                *overrides,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-4000:]
    record = assert_replicas_identical(replicas, local_statistics=False)
    assert record["batch_sizes"] == [8, 8, 8]  # the global batch of 16, halved
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
