"""The CNN image classifier family (`bigmodel-tf train cnn`)."""
