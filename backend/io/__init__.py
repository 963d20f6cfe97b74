"""Reading and writing the files a 3DGS scene is made of: model PLYs, checkpoints, cameras, images."""
