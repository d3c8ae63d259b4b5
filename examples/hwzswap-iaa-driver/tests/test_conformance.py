"""The whole hwzswap conformance kit, one test per parameter set of params.yaml."""

from pathlib import Path

from hwzswap.testing import conformance_tests

from hwzswap_iaa_driver import IaaBackend

test_conformance = conformance_tests(IaaBackend, params_yaml=Path(__file__).with_name("params.yaml"))
