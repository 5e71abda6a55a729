"""roles/toolchain"""
