"""Artefacts that take a registered model out of flowship: an ONNX file to embed, a
container build context, Kubernetes manifests, a CI workflow and a model card.

Each generator reads what the registry and flowship already know and writes files only;
templates ship with the package, nothing is fetched at run time. See docs/packaging.md.
"""
