"""Thin ComfyUI nodes; the math they call lives in samplers/ and model_patches/."""
from comfy_api.v0_0_2 import ComfyExtension, io

from . import ksampler_lists
from .color_fix import ColorFix
from .dossr_loader import DoSSRCheckpointLoader
from .dossr_sampling import DoSSRSampler, DoSSRScheduler
from .model_size import FitToModelSize, RestoreSize
from .pil_resize import ImageScalePIL
from .resshift_image import ResShiftCropOutput, ResShiftPrepareLR
from .resshift_loader import ResShiftLoader
from .resshift_sampling import ResShiftSampler, ResShiftScheduler
from .sds_map import SDSVarianceMap
from .starter_loader import StarterModelLoader
from .tadsr import TADSREncode, TADSREncodeTiled, TADSROneStep
from .tadsr_loader import LoadTADSR
from .tasr import ApplyTASRAdapters, TASRLoader
from .tds_scheduler import TDSScheduler
from .tiling import TiledDiffusion
from .tss import TSSSampler, TSSSpatialTimestepPatch

NODE_LIST: list[type[io.ComfyNode]] = [
    ColorFix,
    ImageScalePIL,
    FitToModelSize,
    RestoreSize,
    DoSSRScheduler,
    DoSSRSampler,
    DoSSRCheckpointLoader,
    StarterModelLoader,
    TDSScheduler,
    SDSVarianceMap,
    TSSSpatialTimestepPatch,
    TSSSampler,
    LoadTADSR,
    TADSREncode,
    TADSREncodeTiled,
    TADSROneStep,
    TiledDiffusion,
    TASRLoader,
    ApplyTASRAdapters,
    ResShiftLoader,
    ResShiftPrepareLR,
    ResShiftScheduler,
    ResShiftSampler,
    ResShiftCropOutput,
]


class TimeAwareSRExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        ksampler_lists.register()
        return NODE_LIST
