"""Tiny copies of real dataset layouts (NSD, THINGS-EEG2) and a local HTTP server for fetch tests.

The builders write the exact published file names, formats and encodings (MATLAB .mat, HDF5, int16
NIfTI scaled by 300, float MGH, ctab tables, pickled .npy dicts) at toy sizes and return the ground
truth they were built from, so tests can check the loaders against independently computed values.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

NSD_ROI_LABELS = {
    "prf-visualrois": {1: "V1v", 2: "V1d", 3: "V2v", 4: "hV4"},
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2"},
}


def _write_ctab(path: Path, labels: dict[int, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["  0 Unknown"] + [f"  {k} {v}" for k, v in sorted(labels.items())]
    path.write_text("\n".join(lines) + "\n")


def make_nsd(root: str | Path, subjects: tuple[int, ...] = (1, 2), n_shared: int = 4, n_unique: int = 8,
             reps: int = 3, n_sessions: int = 3, vol_shape: tuple[int, int, int] = (6, 5, 4),
             n_vertices: tuple[int, int] = (10, 9), seed: int = 0) -> dict[str, Any]:
    """Write a toy NSD under ``root`` (func1pt8mm and fsaverage betas); return the ground truth."""
    import h5py
    import nibabel as nib
    import pandas as pd
    from scipy.io import savemat

    root = Path(root)
    rng = np.random.default_rng(seed)
    per_subject = n_shared + n_unique
    n_images = n_shared + 8 * n_unique
    n_trials = per_subject * reps
    assert n_trials % n_sessions == 0
    tps = n_trials // n_sessions
    perm = rng.permutation(n_images) + 1  # 1-based 73k ids
    sharedix = np.sort(perm[:n_shared])
    subjectim = np.zeros((8, per_subject), dtype=np.int64)
    for s in range(8):
        subjectim[s, :n_shared] = sharedix
        subjectim[s, n_shared:] = perm[n_shared + s * n_unique: n_shared + (s + 1) * n_unique]
    masterordering = rng.permutation(np.repeat(np.arange(1, per_subject + 1), reps))
    design = root / "nsddata/experiments/nsd"
    design.mkdir(parents=True, exist_ok=True)
    savemat(design / "nsd_expdesign.mat", {
        "masterordering": masterordering[None, :].astype(np.float64),
        "subjectim": subjectim.astype(np.float64), "sharedix": sharedix[None, :].astype(np.float64),
        "stimpattern": np.ones((n_sessions, 12, 63)),
    })
    coco = 500000 + 7 * np.arange(n_images)
    split = np.where(np.arange(n_images) % 2 == 0, "train2017", "val2017")
    info = {"cocoId": coco, "cocoSplit": split, "cropBox": ["(0, 0, 0.1, 0.1)"] * n_images,
            "loss": np.zeros(n_images), "nsdId": np.arange(n_images), "flagged": False, "BOLD5000": False,
            "shared1000": np.isin(np.arange(1, n_images + 1), sharedix)}
    for s in range(1, 9):
        info[f"subject{s}"] = np.isin(np.arange(1, n_images + 1), subjectim[s - 1]).astype(int)
    for s in range(1, 9):
        trial_image = subjectim[s - 1, masterordering - 1]
        for r in range(reps):
            col = np.zeros(n_images, dtype=int)
            for img in np.unique(trial_image):
                col[img - 1] = np.flatnonzero(trial_image == img)[r] + 1
            info[f"subject{s}_rep{r}"] = col
    pd.DataFrame(info).to_csv(design / "nsd_stim_info_merged.csv")
    stim = root / "nsddata_stimuli/stimuli/nsd"
    (stim / "annotations").mkdir(parents=True, exist_ok=True)
    brick = rng.integers(0, 255, size=(n_images, 8, 8, 3), dtype=np.uint8)
    brick[:, :, :, 0] = (np.arange(n_images) % 256)[:, None, None]
    with h5py.File(stim / "nsd_stimuli.hdf5", "w") as f:
        f.create_dataset("imgBrick", data=brick, chunks=(1, 8, 8, 3))
    ann_id = 1000
    files = {"train2017": {"images": [], "annotations": []}, "val2017": {"images": [], "annotations": []}}
    for k in range(n_images):
        target = files[split[k]]
        target["images"].append({"id": int(coco[k]), "file_name": f"{coco[k]:012d}.jpg"})
        target["annotations"].append({"image_id": int(coco[k]), "id": ann_id + 1, "caption": f"second caption {k + 1}"})
        target["annotations"].append({"image_id": int(coco[k]), "id": ann_id, "caption": f"first caption {k + 1} "})
        ann_id += 2
    for name, content in files.items():
        (stim / "annotations" / f"captions_{name}.json").write_text(json.dumps(content))

    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    affine[:3, 3] = [-5.0, -4.0, -3.0]
    truth: dict[str, Any] = {"masterordering": masterordering, "subjectim": subjectim, "sharedix": sharedix,
                             "n_images": n_images, "tps": tps, "n_sessions": n_sessions, "affine": affine,
                             "vol": {}, "surf": {}, "vol_rois": {}, "surf_rois": {}, "vol_ncsnr": {},
                             "surf_ncsnr": {}, "brick": brick}
    fs_label = root / "nsddata/freesurfer/fsaverage/label"
    fs_label.mkdir(parents=True, exist_ok=True)
    surf_rois = {"nsdgeneral": [], "prf-visualrois": []}
    for h, n in zip(("lh", "rh"), n_vertices):
        general = (rng.random(n) < 0.7).astype(np.int32)
        general[:2] = 1
        prf = rng.integers(0, 5, size=n).astype(np.int32)
        nib.save(nib.MGHImage(general.reshape(n, 1, 1), np.eye(4)), fs_label / f"{h}.nsdgeneral.mgz")
        nib.save(nib.MGHImage(prf.reshape(n, 1, 1), np.eye(4)), fs_label / f"{h}.prf-visualrois.mgz")
        surf_rois["nsdgeneral"].append(general)
        surf_rois["prf-visualrois"].append(prf)
    truth["surf_rois"] = {k: np.concatenate(v) for k, v in surf_rois.items()}
    _write_ctab(fs_label / "prf-visualrois.mgz.ctab", NSD_ROI_LABELS["prf-visualrois"])
    _write_ctab(fs_label / "nsdgeneral.mgz.ctab", {1: "nsdgeneral"})

    n_vox = int(np.prod(vol_shape))
    for subj in subjects:
        trial_image = subjectim[subj - 1, masterordering - 1]
        signal_v = rng.standard_normal((n_images + 1, n_vox)) * 1.5
        signal_s = rng.standard_normal((n_images + 1, sum(n_vertices))) * 1.5
        vol_dir = root / f"nsddata_betas/ppdata/subj{subj:02d}/func1pt8mm/betas_fithrf_GLMdenoise_RR"
        surf_dir = root / f"nsddata_betas/ppdata/subj{subj:02d}/fsaverage/betas_fithrf_GLMdenoise_RR"
        vol_dir.mkdir(parents=True, exist_ok=True)
        surf_dir.mkdir(parents=True, exist_ok=True)
        truth["vol"][subj], truth["surf"][subj] = {}, {}
        for sess in range(1, n_sessions + 1):
            imgs = trial_image[(sess - 1) * tps: sess * tps]
            v = signal_v[imgs] + rng.standard_normal((tps, n_vox)) + 0.3 * sess
            raw = np.round(v * 300).astype(np.int16)
            vol = raw.T.reshape(vol_shape + (tps,))
            img = nib.Nifti1Image(vol, affine)
            img.set_data_dtype(np.int16)
            nib.save(img, vol_dir / f"betas_session{sess:02d}.nii.gz")
            truth["vol"][subj][sess] = vol.astype(np.float64) / 300.0
            srf = (signal_s[imgs] + rng.standard_normal((tps, sum(n_vertices)))).astype(np.float32)
            lh, rh = srf[:, :n_vertices[0]].T, srf[:, n_vertices[0]:].T
            for h, part in (("lh", lh), ("rh", rh)):
                nib.save(nib.MGHImage(part.reshape(part.shape[0], 1, 1, tps), np.eye(4)),
                         surf_dir / f"{h}.betas_session{sess:02d}.mgh")
            truth["surf"][subj][sess] = np.concatenate([lh, rh]).astype(np.float64)
        ncsnr_v = rng.uniform(0.1, 2.0, size=vol_shape).astype(np.float32)
        nib.save(nib.Nifti1Image(ncsnr_v, affine), vol_dir / "ncsnr.nii.gz")
        truth["vol_ncsnr"][subj] = ncsnr_v
        ncsnr_s = rng.uniform(0.1, 2.0, size=sum(n_vertices)).astype(np.float32)
        nib.save(nib.MGHImage(ncsnr_s[:n_vertices[0]].reshape(-1, 1, 1), np.eye(4)), surf_dir / "lh.ncsnr.mgh")
        nib.save(nib.MGHImage(ncsnr_s[n_vertices[0]:].reshape(-1, 1, 1), np.eye(4)), surf_dir / "rh.ncsnr.mgh")
        truth["surf_ncsnr"][subj] = ncsnr_s
        roi_dir = root / f"nsddata/ppdata/subj{subj:02d}/func1pt8mm/roi"
        roi_dir.mkdir(parents=True, exist_ok=True)
        general = np.where(rng.random(vol_shape) < 0.6, 1, 0).astype(np.int16)
        general[rng.random(vol_shape) < 0.15] = -1
        general.flat[0] = 1
        prf = np.where(general == 1, rng.integers(0, 5, size=vol_shape),
                       np.where(general == -1, -1, 0)).astype(np.int16)
        faces = np.where(general >= 0, rng.integers(0, 4, size=vol_shape), -1).astype(np.int16)
        rois = {"nsdgeneral": general, "prf-visualrois": prf, "floc-faces": faces}
        for name, arr in rois.items():
            nib.save(nib.Nifti1Image(arr, affine), roi_dir / f"{name}.nii.gz")
        label_dir = root / f"nsddata/freesurfer/subj{subj:02d}/label"
        _write_ctab(label_dir / "nsdgeneral.mgz.ctab", {1: "nsdgeneral"})
        for name, labels in NSD_ROI_LABELS.items():
            _write_ctab(label_dir / f"{name}.mgz.ctab", labels)
        truth["vol_rois"][subj] = rois
    return truth


def nsd_trial_images_from_csv(root: str | Path, subject: int, n_trials: int) -> np.ndarray:
    """1-based 73k id of each trial, read from the CSV's subjectX_repY trial numbers (not the .mat)."""
    import pandas as pd

    info = pd.read_csv(Path(root) / "nsddata/experiments/nsd/nsd_stim_info_merged.csv")
    out = np.zeros(n_trials, dtype=np.int64)
    for col in [c for c in info.columns if re.fullmatch(rf"subject{subject}_rep\d+", c)]:
        shown = info[col].to_numpy() > 0
        out[info[col].to_numpy()[shown] - 1] = info["nsdId"].to_numpy()[shown] + 1
    return out


# ---- THINGS-EEG2 ---------------------------------------------------------------------------------
EEG_CHANNELS = ("O1", "Oz", "O2", "PO7", "POz", "P3", "Pz")


def make_things_eeg2(root: str | Path, subjects: tuple[int, ...] = (1, 2), n_train_concepts: int = 4,
                     images_per_concept: int = 2, n_test: int = 3, train_reps: int = 4, test_reps: int = 6,
                     channels: tuple[str, ...] = EEG_CHANNELS, n_times: int = 7, seed: int = 0) -> dict[str, Any]:
    """Write a toy THINGS-EEG2 (preprocessed data and image set) under ``root``; return the ground truth."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    words = ["aardvark", "abacus", "accordion", "acorn", "air_conditioner", "airbag", "aircraft", "alligator"]
    train_files, train_concepts = [], []
    for c in range(n_train_concepts):
        concept = f"{c + 1:05d}_{words[c]}"
        for i in range(images_per_concept):
            train_files.append(f"{words[c]}_{i + 1:02d}{'bcdefghijk'[i]}.jpg")
            train_concepts.append(concept)
    test_files, test_concepts = [], []
    for c in range(n_test):
        word = words[-1 - c]
        test_concepts.append(f"{c + 1:05d}_{word}")
        test_files.append(f"{word}_{c + 10:02d}s.jpg")
    image_set = root / "image_set"
    parts = (("training_images", train_files, train_concepts), ("test_images", test_files, test_concepts))
    for kind, names, concepts in parts:
        for k, (f, c) in enumerate(zip(names, concepts)):
            folder = image_set / kind / c
            folder.mkdir(parents=True, exist_ok=True)
            color = (k * 20 % 256, 100 if kind == "test_images" else 0, 50)
            Image.new("RGB", (16, 12), color).save(folder / f, quality=95)
    meta = {"train_img_files": train_files, "train_img_concepts": train_concepts,
            "test_img_files": test_files, "test_img_concepts": test_concepts}
    np.save(image_set / "image_metadata.npy", meta, allow_pickle=True)
    times = np.round(np.linspace(-0.2, 0.8, n_times), 3)
    truth: dict[str, Any] = {"meta": meta, "times": times, "channels": list(channels), "train": {}, "test": {}}
    n_ch = len(channels)
    for subj in subjects:
        folder = root / "Preprocessed_data" / f"sub-{subj:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for part, n_img, reps in (("training", len(train_files), train_reps), ("test", n_test, test_reps)):
            signal = rng.standard_normal((n_img, 1, n_ch, n_times)) * 2.0
            data = (signal + rng.standard_normal((n_img, reps, n_ch, n_times))).astype(np.float32)
            np.save(folder / f"preprocessed_eeg_{part}.npy",
                    {"preprocessed_eeg_data": data, "ch_names": list(channels), "times": times}, allow_pickle=True)
            truth["train" if part == "training" else "test"][subj] = data
    return truth


def zip_folder(folder: Path, archive: Path, arcroot: str) -> Path:
    """Zip ``folder`` into ``archive`` with member names under ``arcroot/``."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{arcroot}/{path.relative_to(folder).as_posix()}")
    return archive


# ---- local HTTP server -----------------------------------------------------------------------------
@dataclass
class ServerLog:
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


class FileServer:
    """Serve ``root`` on 127.0.0.1 with HEAD, Range and md5 ETags; can drop a connection half-way.

    ``drop_first``: paths whose first GET sends half the body then closes the connection.
    ``etags``: path → ETag to send instead of the file's md5. ``json_routes``: path → JSON object,
    where the string ``{base}`` is replaced by the server URL (for API listings).
    """

    def __init__(self, root: str | Path, drop_first: set[str] | None = None, etags: dict[str, str] | None = None,
                 json_routes: dict[str, Any] | None = None, range_support: bool = True) -> None:
        self.root = Path(root)
        self.drop_first = set(drop_first or ())
        self.etags = dict(etags or {})
        self.json_routes = dict(json_routes or {})
        self.range_support = range_support
        self.log = ServerLog()
        self._dropped: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _target(self) -> tuple[str, Path | None, bytes | None]:
                rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
                if rel in server.json_routes:
                    body = json.dumps(server.json_routes[rel]).replace("{base}", server.url).encode()
                    return rel, None, body
                path = (server.root / rel).resolve()
                if server.root.resolve() not in path.parents or not path.is_file():
                    return rel, None, None
                return rel, path, None

            def _headers(self, code: int, length: int, extra: dict[str, str]) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(length))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                rel, path, body = self._target()
                server.log.requests.append((self.command, rel, self.headers.get("Range")))
                if body is not None:
                    self._headers(200, len(body), {"Content-Type": "application/json"})
                    if not head:
                        self.wfile.write(body)
                    return
                if path is None:
                    self._headers(404, 0, {})
                    return
                data = path.read_bytes()
                etag = server.etags.get(rel, hashlib.md5(data).hexdigest())
                start = 0
                rng = self.headers.get("Range")
                if rng and server.range_support:
                    m = re.fullmatch(r"bytes=(\d+)-", rng.strip())
                    start = int(m.group(1)) if m else 0
                    if start >= len(data):
                        self._headers(416, 0, {"Content-Range": f"bytes */{len(data)}"})
                        return
                    self._headers(206, len(data) - start, {
                        "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}", "ETag": f'"{etag}"',
                        "Accept-Ranges": "bytes"})
                else:
                    self._headers(200, len(data), {"ETag": f'"{etag}"', "Accept-Ranges": "bytes"})
                if head:
                    return
                payload = data[start:]
                if rel in server.drop_first and rel not in server._dropped:
                    server._dropped.add(rel)
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            request_queue_size = 64

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def gets(self, rel: str) -> list[str | None]:
        """Range headers of the GET requests for ``rel``, in order."""
        return [r for m, p, r in self.log.requests if m == "GET" and p == rel]


def make_things_eeg2_raw(root: str | Path, subject: int = 1, sessions: int = 2, n_train: int = 8, n_test: int = 3,
                         channels: tuple[str, ...] = ("O1", "Oz", "P3", "Cz"), sfreq: float = 100.0,
                         seed: int = 0) -> dict[str, Any]:
    """Write raw_data/sub-XX/ses-YY/raw_eeg_{training,test}.npy like the figshare release (stim channel)."""
    rng = np.random.default_rng(seed)
    truth: dict[str, Any] = {"events": {}}
    for s in range(1, sessions + 1):
        folder = Path(root) / "raw_data" / f"sub-{subject:02d}" / f"ses-{s:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for part, n in (("training", n_train), ("test", n_test)):
            codes = list(rng.permutation(np.arange(1, n + 1)))
            codes.insert(2, 99999)
            n_samples = 50 + 40 * len(codes) + 120
            data = rng.standard_normal((len(channels) + 1, n_samples)) * 1e-6
            stim = np.zeros(n_samples)
            for k, code in enumerate(codes):
                onset = 50 + 40 * k
                stim[onset] = code
                data[:len(channels), onset: onset + 20] += 5e-6
            data[-1] = stim
            np.save(folder / f"raw_eeg_{part}.npy", {
                "raw_eeg_data": data, "ch_names": list(channels) + ["stim"],
                "ch_types": ["eeg"] * len(channels) + ["stim"], "sfreq": sfreq}, allow_pickle=True)
            truth["events"][(part, s)] = [c for c in codes if c != 99999]
    return truth
