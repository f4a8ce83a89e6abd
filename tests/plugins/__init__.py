"""Third-party probes the plug-in acceptance tests install (nothing in audit/ knows them)."""
