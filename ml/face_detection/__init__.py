"""Face detection: MTCNN's P/R/O-Net with the mtcnn wheel's weights, the whole cascade in one serving signature."""
