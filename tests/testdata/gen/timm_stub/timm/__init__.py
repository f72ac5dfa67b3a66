"""Stand-in for the three timm helpers (and the registry decorator) that
MobileSAM's mobile_sam/modeling/tiny_vit_sam.py imports. Used only on
PYTHONPATH by ../../gen_tinyvit.py; not a copy of timm.

In eval mode (all fixtures are generated in eval mode, with drop_path_rate 0,
so no DropPath is even instantiated) DropPath is the identity.
"""
