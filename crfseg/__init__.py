"""crfseg: classical and hybrid CNN-CRF semantic segmentation.

Subpackages
-----------
metrics     confusion matrix, IoU, Dice and accuracy (numpy and torch)
io          images, score arrays, label PNGs, overlays
crf         DenseCRF (fully connected CRF), permutohedral lattice, GridCRF
classical   split-and-merge gray-level segmentation
losses      segmentation losses
models      CNN architectures and CRFasRNN
datasets    dataset readers and joint transforms
"""

__version__ = "0.1.0"
