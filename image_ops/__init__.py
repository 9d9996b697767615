"""Image operations on ComfyUI IMAGE tensors that are neither sampling nor networks: colour fix, the SDS
variance map, luma, PIL's bicubic, the model's size (raise, pad, crop back). They import nothing else of the pack but its errors."""
