import numpy as np

from golden.network import load_network, run_network
from reports.transition import (CONVENTIONS, artifact_layers, network_counts,
                                resnet18_cifar_layers, resnet50_imagenet_layers,
                                transition_table)


def test_artifact_counts_match_golden_shift_counter(tiny_artifact):
    # The golden runner counts weights + input activations per layer and image as shifts.
    net = load_network(tiny_artifact)
    x = np.zeros((3, 1, 8, 8), np.int64)
    res = run_network(net, x, bits=4)
    c = network_counts(artifact_layers(net))
    assert 3 * c["weights+activations"] == res.totals()["shifts"]
    w = sum(net.arrays[net.layer(q)["weight"]].size for q in net.qlayers)
    assert c["weights"] == w


def test_resnet_tables_are_consistent():
    for layers in (resnet18_cifar_layers(), resnet50_imagenet_layers()):
        c = network_counts(layers)
        assert c["weights+activations"] == c["weights"] + c["activations"]
        # channels chain: each conv's input channels equal some earlier conv's outputs
        outs = {3}
        for l in layers:
            assert l["cin"] in outs, l["name"]
            outs.add(l["cout"])
    # ResNet-50 has ~2.2x the weights of ResNet-18 (25.5M vs 11.2M: the usual figures)
    r18 = network_counts(resnet18_cifar_layers())["weights"]
    r50 = network_counts(resnet50_imagenet_layers())["weights"]
    assert 2.0 < r50 / r18 < 2.5


def test_table_states_paper_comparison():
    t = transition_table({"resnet50_imagenet": resnet50_imagenet_layers()}, {"nested_round": 0.01})
    row = t["networks"]["resnet50_imagenet"]["all_layers"]
    for conv in CONVENTIONS:
        assert row[conv]["fp_ops"] == 2 * row[conv]["shifts"]
    p = t["paper_resnet50"]
    assert p["closest"]["convention"] in CONVENTIONS
    assert isinstance(p["verdict"], str) and "28.3M" in p["verdict"]
