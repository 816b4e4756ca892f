"""Deployments: named, revisioned routes to model versions, recorded in flowship's state
database and followed by servers. ``assign`` is the one function that decides which
variant a key gets."""

from flowship.deployments.assign import Assigner, assign, unit
from flowship.deployments.revisions import (
    DeploymentNotFound,
    Revision,
    apply,
    current,
    current_number,
    delete,
    history,
    list_deployments,
    set_traffic,
    undo,
)
from flowship.deployments.spec import DeploymentSpec, LogSpec, Variant, parse_weights, ref_uri

__all__ = [
    "Assigner",
    "DeploymentNotFound",
    "DeploymentSpec",
    "LogSpec",
    "Revision",
    "Variant",
    "apply",
    "assign",
    "current",
    "current_number",
    "delete",
    "history",
    "list_deployments",
    "parse_weights",
    "ref_uri",
    "set_traffic",
    "undo",
    "unit",
]
