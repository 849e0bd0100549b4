"""The pure pieces behind a guest's and a production instance's answers: owner-only
flags, an instance's resources from its R, and a refusal for lack of them."""

from __future__ import annotations

import errno

import pytest

from maestro_flux.model.guest import guest_flags
from maestro_flux.model.inventory import Inventory, idset_count, inventory_from_R
from maestro_flux.model.refusals import refusal
from maestro_flux.model.resources import StepResources, describe


def test_a_guest_keeps_every_flag_but_the_owner_only_ones():
    assert guest_flags(["debug", "waitable", "novalidate"]) == (["debug"],
                                                                 ["waitable", "novalidate"])
    assert guest_flags([]) == ([], [])


@pytest.mark.parametrize("text, count", [("0", 1), ("0-3", 4), ("0-1,4,6-7", 5), ("", 0),
                                         ("[2-3]", 2)])
def test_idsets_are_counted(text, count):
    assert idset_count(text) == count


def test_an_instance_is_counted_from_its_R():
    R = {"version": 1, "execution": {"R_lite": [
        {"rank": "0-1", "children": {"core": "0-3", "gpu": "0"}},
        {"rank": "2", "children": {"core": "0-1"}}]}}
    assert inventory_from_R(R) == Inventory(3, 10, 2)
    assert Inventory(3, 10, 2).describe() == "3 nodes, 10 cores, 2 GPUs"
    assert Inventory(1, 1, 0).describe() == "1 node, 1 core, no GPUs"
    assert Inventory(None, why="resource.status: x").describe() == "not known (resource.status: x)"


def _resources(**changes) -> StepResources:
    base = dict(nested=False, nodes=None, slots=1, cores_per_slot=1, gpus_per_slot=0,
                exclusive=False, duration=0.0, urgency=16, tasks=1, cores_per_task=1,
                gpus_per_task=0, launcher_exclusive=False)
    return StepResources(**{**base, **changes})


def test_a_step_says_what_it_asks_for():
    assert describe(_resources()) == "1 slot of 1 core"
    wide = _resources(nodes=2, exclusive=True, slots=4, cores_per_slot=2, gpus_per_slot=1)
    assert describe(wide) == "2 nodes (exclusive), 4 slots of 2 cores and 1 GPU"


def test_an_unsatisfiable_refusal_says_what_the_instance_has_and_the_step_asks():
    err = OSError(errno.ENODEV, "Unsatisfiable request")
    assert refusal(err, "1 slot of 1 core and 1 GPU", Inventory(2, 4, 0)) == (
        "Flux refused the job: Unsatisfiable request: the instance has 2 nodes, 4 cores, "
        "no GPUs; the step asks for 1 slot of 1 core and 1 GPU")
    assert refusal(err, "1 slot of 1 core", Inventory(None, why="x")) == (
        "Flux refused the job: Unsatisfiable request: the step asks for 1 slot of 1 core")
    assert refusal(err) == "Flux refused the job: Unsatisfiable request"


def test_other_refusals_are_the_brokers_words_alone():
    err = OSError(errno.EPERM, "Invalid queue 'x' specified")
    assert refusal(err, "1 slot of 1 core", Inventory(2, 4, 0)) == (
        "Flux refused the job: Invalid queue 'x' specified")
