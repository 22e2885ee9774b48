"""So-VITS-SVC work (training, conversion): the only package that imports torch.

Filled by the training and conversion issues; the web side never imports it.
"""
