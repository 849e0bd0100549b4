"""The real multi-user instance is skipped, naming what is missing, when the IMP will
not run jobs for its owner (flux-security's exec.allowed-users)."""

from __future__ import annotations

from multiuser import imp_refuses


def test_an_imp_that_does_not_list_the_owner_is_a_named_skip(tmp_path):
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "imp.toml").write_text('[exec]\nallowed-users = ["flux"]\n')
    why = imp_refuses("fluxowner", conf)
    assert why == ("no real multi-user instance: the IMP will not run jobs for the instance "
                   f"owner 'fluxowner': exec.allowed-users in {conf / 'imp.toml'} is ['flux']")


def test_the_owner_listed_in_any_file_is_allowed(tmp_path):
    (tmp_path / "a.toml").write_text('[exec]\nallowed-shells = ["/x/flux-shell"]\n')
    (tmp_path / "b.toml").write_text('[exec]\nallowed-users = ["flux", "fluxowner"]\n')
    assert imp_refuses("fluxowner", tmp_path) is None


def test_no_configuration_or_a_broken_one_is_named(tmp_path):
    assert f"no IMP configuration (*.toml) in {tmp_path}" in imp_refuses("fluxowner", tmp_path)
    (tmp_path / "imp.toml").write_text("[exec\n")
    assert f"cannot read the IMP's {tmp_path / 'imp.toml'}" in imp_refuses("fluxowner",
                                                                             tmp_path)
