"""placeholder"""
from ._query import GenericQueryAPI as SqlQueryAPI
from ._maintenance import GenericMaintenance as SqlMaintenance
