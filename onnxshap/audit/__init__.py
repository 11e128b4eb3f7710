"""The audit workflow: run folders, removal curves, repairs and deployment policies."""

from onnxshap.audit.runfolder import RunFolder, RunFolderError
from onnxshap.audit.runner import AuditConfig, run_audit

__all__ = ["AuditConfig", "RunFolder", "RunFolderError", "run_audit"]
