"""The MFU peak table tells the H100 variants apart by the name CUDA reports."""

import pytest

from phi4cli.train.metrics import peak_flops_for


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989e12),  # SXM
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H100 NVL", 835e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA A100 80GB PCIe", 312e12),
        ("NVIDIA GeForce RTX 3090", None),
    ],
)
def test_peak_flops_by_device_name(name, peak):
    assert peak_flops_for(name) == peak
