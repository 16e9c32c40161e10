"""The room label is broadcast to the whole network (mDNS TXT) and shown to every phone: a room named
after the clinician who works in it ("Dr Patel") is a clinician identifier in mDNS (docs/design.md §3.5).
The device config and the CA refuse one, with one line saying what to do; room names still pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.crypto import ca
from edge_agent.crypto.errors import CertificateError
from edge_agent.device.config import parse_config
from edge_agent.errors import ConfigError

PERSON_LIKE = ["Dr Smith", "Exam 2 - Dr. Patel", "Doctor Jones", "Prof Okafor room", "dr_lee", "Nurse Kim", "Mrs Brown",
               # the title glued to the name, CamelCase (an IT naming habit: hostnames, AD objects)
               "DrPatel", "Room DrSmith", "ProfOkafor", "MrsBrown 2", "NurseKim"]
ROOMS = ["Exam 3", "Room 4", "MS clinic 2", "Cardiology 4B", "Drop-in 1", "Dermatology", "Demo room", "Drawing room",
         "DRoom 1", "MRI 2", "Dressing room"]


@pytest.mark.parametrize("label", PERSON_LIKE)
def test_config_refuses_a_room_label_that_names_a_person(label: str) -> None:
    with pytest.raises(ConfigError, match="server.room.*person"):
        parse_config({"server": {"room": label}})


@pytest.mark.parametrize("label", ROOMS)
def test_config_keeps_room_names(label: str) -> None:
    assert parse_config({"server": {"room": label}}).server.room == label


def test_the_ca_refuses_a_device_certificate_for_a_person_like_room(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca", site="Test")
    with pytest.raises(CertificateError, match="person"):
        ca.issue_device(authority, "Dr Smith", tmp_path / "device.pem")
    assert not (tmp_path / "device.pem").exists()
    assert ca.issue_device(authority, "Exam 3", tmp_path / "device.pem").bundle.is_file()


def test_the_ca_refuses_a_contributor_certificate_for_a_person_like_service_line(tmp_path: Path) -> None:
    """The service line is in every population record and beside every released cell (docs/privacy.md §1)."""
    authority = ca.init_ca(tmp_path / "ca", site="Test")
    with pytest.raises(CertificateError, match="person"):
        ca.issue_contributor(authority, "dr-smith", tmp_path / "contrib.pem")
    assert not (tmp_path / "contrib.pem").exists()
    assert ca.issue_contributor(authority, "cardiology", tmp_path / "contrib.pem").bundle.is_file()
