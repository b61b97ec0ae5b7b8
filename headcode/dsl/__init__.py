"""The attention-program language: grammar, syntax, checker, canonical form, printer.

Imports nothing else of headcode.
"""
