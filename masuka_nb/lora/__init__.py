"""LoRA studio: datasets (import, curate, caption), local Flux LoRA training, export and comparison.

    from masuka_nb import lora
    ds = lora.Dataset.create("my-cat")
    ds.import_zip("/content/cat.zip")
    ds.curate()                         # flags duplicates, blur, low aesthetics; you override
    ds.caption(trigger_word="mycat")    # Florence-2 captions as .txt sidecars
    run = lora.train(ds, trigger_word="mycat")
    lora.compare([run.lora_path], prompts=["mycat on a sofa"], seeds=[1, 2])

Names resolve on first use, so `import masuka_nb.lora` loads no torch.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from masuka_nb._lazy import attach as _attach

_LAZY: dict[str, tuple[str, str]] = {
    "CaptionReport": ("masuka_nb.lora.caption", "CaptionReport"),
    "CloudTrainingJob": ("masuka_nb.lora.cloud", "CloudTrainingJob"),
    "Comparison": ("masuka_nb.lora.comparison", "Comparison"),
    "CurationReport": ("masuka_nb.lora.curate", "CurationReport"),
    "Dataset": ("masuka_nb.lora.dataset", "Dataset"),
    "DatasetItem": ("masuka_nb.lora.dataset", "DatasetItem"),
    "ImportReport": ("masuka_nb.lora.dataset", "ImportReport"),
    "TrainingConfig": ("masuka_nb.lora.plan", "TrainingConfig"),
    "TrainingPlan": ("masuka_nb.lora.plan", "TrainingPlan"),
    "TrainingRun": ("masuka_nb.lora.runs", "TrainingRun"),
    "compare": ("masuka_nb.lora.comparison", "compare"),
    "export_kohya": ("masuka_nb.lora.export", "export_kohya"),
    "export_lora": ("masuka_nb.lora.export", "export_lora"),
    "plan_training": ("masuka_nb.lora.plan", "plan_training"),
    "push_to_hub": ("masuka_nb.lora.export", "push_to_hub"),
    "train": ("masuka_nb.lora.training", "train"),
    "train_cloud": ("masuka_nb.lora.cloud", "train_cloud"),
}

__all__ = [
    "CaptionReport",
    "CloudTrainingJob",
    "Comparison",
    "CurationReport",
    "Dataset",
    "DatasetItem",
    "ImportReport",
    "TrainingConfig",
    "TrainingPlan",
    "TrainingRun",
    "compare",
    "export_kohya",
    "export_lora",
    "plan_training",
    "push_to_hub",
    "train",
    "train_cloud",
]


__getattr__, __dir__ = _attach(globals(), _LAZY)


if _TYPE_CHECKING:
    from masuka_nb.lora.caption import CaptionReport
    from masuka_nb.lora.cloud import CloudTrainingJob, train_cloud
    from masuka_nb.lora.comparison import Comparison, compare
    from masuka_nb.lora.curate import CurationReport
    from masuka_nb.lora.dataset import Dataset, DatasetItem, ImportReport
    from masuka_nb.lora.export import export_kohya, export_lora, push_to_hub
    from masuka_nb.lora.plan import TrainingConfig, TrainingPlan, plan_training
    from masuka_nb.lora.runs import TrainingRun
    from masuka_nb.lora.training import train
