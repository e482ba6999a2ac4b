"""The bottom floor: gradient hooks, argument checks, seeds, the Captum shim.

Everything here knows only torch and Captum; every other floor may import it.
"""
