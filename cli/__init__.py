"""The onnxshap command line (installed as `onnxshap_cli`)."""
