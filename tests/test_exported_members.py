import flowship


def test_all_is_sorted_and_importable():
    assert flowship.__all__ == sorted(flowship.__all__)
    assert set(flowship._LAZY) | {"FlowshipError", "__version__"} == set(flowship.__all__)
    for name in flowship.__all__:
        assert hasattr(flowship, name), name


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, flowship; "
        "heavy = {'mlflow', 'pandas', 'scipy', 'sklearn'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
