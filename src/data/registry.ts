// The MedMNIST v2 datasets (and two synthetic stand-ins) as data: labels, channels, split sizes,
// files, MD5s and download URLs. Facts come from medmnist/info.py v3.0.2 (MedMNIST/MedMNIST
// commit 805b742, Zenodo record 10519652, "MedMNIST+"). Split sizes are the v2.2.4+/v3 counts:
// v2.2.4 removed a few blank samples from organ{a,c,s}mnist, organmnist3d and vesselmnist3d, so
// those files (and MD5s) differ from the original v2 release; an old file fails `mf data verify`.
// Over 400 lines because it is a table: one entry of facts per dataset, nothing to split by concern.
import { ConfigError } from '../errors.ts';

export type Split = 'train' | 'val' | 'test';
export const SPLITS: readonly Split[] = ['train', 'val', 'test'];

/** 'binary' is one sigmoid output; 'ordinal' (RetinaMNIST grades 0-4) is scored as classes. */
export type Task = 'multi-class' | 'binary' | 'multi-label' | 'ordinal';

/**
 * Imaging modalities, indexed by the latent modality id the model embeds, grouped as the thesis groups them
 * (Tables 4.4/4.9): one "microscope" latent for PathMNIST, DermaMNIST, BloodMNIST and TissueMNIST. The index is
 * part of a trained model's meaning: a checkpoint made with another vocabulary no longer resumes (its modality
 * embedding has another shape). 'synthetic' is for the generated test sets.
 */
export const MODALITIES = [
  'x-ray',
  'ct',
  'mr angiography',
  'ultrasound',
  'optical coherence tomography',
  'fundus photography',
  'microscope',
  'electron microscopy',
  'synthetic',
] as const;
export type Modality = (typeof MODALITIES)[number];

/** Body parts / specimens, indexed by the latent body-part id. Append only, as above. */
export const BODY_PARTS = [
  'colon tissue',
  'chest',
  'skin',
  'retina',
  'breast',
  'blood',
  'kidney',
  'abdomen',
  'brain',
  'synthetic',
] as const;
export type BodyPart = (typeof BODY_PARTS)[number];

export interface DataFile {
  /** Square side length (2D) or cube side (3D) in pixels. */
  size: number;
  /** File name inside the data root, e.g. 'breastmnist_64.npz'. */
  file: string;
  /** Official download URL; null for generated sets. */
  url: string | null;
  /** Official MD5 of the whole file; null for generated sets. */
  md5: string | null;
  /** Size of the official file in bytes; null where not known here (generated sets, and see BYTES). */
  bytes: number | null;
}

export interface DatasetInfo {
  key: string;
  name: string;
  dim: 2 | 3;
  modality: Modality;
  bodyPart: BodyPart;
  task: Task;
  /** Class names (multi-class, binary, ordinal) or the 14 finding names (multi-label). */
  labels: readonly string[];
  channels: 1 | 3;
  /** Sample counts per split (v2.2.4+/v3). For synthetic sets: the generator's defaults. */
  splits: Readonly<Record<Split, number>>;
  files: readonly DataFile[];
  /** Latent ids: dimensionality (0 = 2D, 1 = 3D), index into MODALITIES, index into BODY_PARTS. */
  latent: { dim: 0 | 1; modality: number; bodyPart: number };
  license: string;
  synthetic: boolean;
}

const ZENODO = 'https://zenodo.org/records/10519652/files';

interface Spec {
  key: string;
  name: string;
  dim: 2 | 3;
  modality: Modality;
  bodyPart: BodyPart;
  task: Task;
  labels: readonly string[];
  channels: 1 | 3;
  splits: [number, number, number];
  /** MD5 per size: 2D sets have 28/64/128/224, 3D sets 28/64. */
  md5: Readonly<Record<number, string>>;
  license?: string;
}

const ORGAN_LABELS = [
  'bladder',
  'femur-left',
  'femur-right',
  'heart',
  'kidney-left',
  'kidney-right',
  'liver',
  'lung-left',
  'lung-right',
  'pancreas',
  'spleen',
];

const SPECS: readonly Spec[] = [
  {
    key: 'pathmnist',
    name: 'PathMNIST',
    dim: 2,
    modality: 'microscope',
    bodyPart: 'colon tissue',
    task: 'multi-class',
    channels: 3,
    splits: [89996, 10004, 7180],
    labels: [
      'adipose',
      'background',
      'debris',
      'lymphocytes',
      'mucus',
      'smooth muscle',
      'normal colon mucosa',
      'cancer-associated stroma',
      'colorectal adenocarcinoma epithelium',
    ],
    md5: {
      28: 'a8b06965200029087d5bd730944a56c1',
      64: '55aa9c1e0525abe5a6b9d8343a507616',
      128: 'ac42d08fb904d92c244187169d1fd1d9',
      224: '2c51a510bcdc9cf8ddb2af93af1eadec',
    },
  },
  {
    key: 'chestmnist',
    name: 'ChestMNIST',
    dim: 2,
    modality: 'x-ray',
    bodyPart: 'chest',
    task: 'multi-label',
    channels: 1,
    splits: [78468, 11219, 22433],
    labels: [
      'atelectasis',
      'cardiomegaly',
      'effusion',
      'infiltration',
      'mass',
      'nodule',
      'pneumonia',
      'pneumothorax',
      'consolidation',
      'edema',
      'emphysema',
      'fibrosis',
      'pleural',
      'hernia',
    ],
    md5: {
      28: '02c8a6516a18b556561a56cbdd36c4a8',
      64: '9de6cd0b934ebb5b7426cfba5efbae16',
      128: 'db107e5590b27930b62dbaf558aebee3',
      224: '45bd33e6f06c3e8cdb481c74a89152aa',
    },
  },
  {
    key: 'dermamnist',
    name: 'DermaMNIST',
    dim: 2,
    modality: 'microscope',
    bodyPart: 'skin',
    task: 'multi-class',
    channels: 3,
    splits: [7007, 1003, 2005],
    license: 'CC BY-NC 4.0',
    labels: [
      'actinic keratoses and intraepithelial carcinoma',
      'basal cell carcinoma',
      'benign keratosis-like lesions',
      'dermatofibroma',
      'melanoma',
      'melanocytic nevi',
      'vascular lesions',
    ],
    md5: {
      28: '0744692d530f8e62ec473284d019b0c7',
      64: 'b70a2f5635c6199aeaa28c31d7202e1f',
      128: '2defd784463fa5243564e855ed717de1',
      224: '8974907d8e169bef5f5b96bc506ae45d',
    },
  },
  {
    key: 'octmnist',
    name: 'OCTMNIST',
    dim: 2,
    modality: 'optical coherence tomography',
    bodyPart: 'retina',
    task: 'multi-class',
    channels: 1,
    splits: [97477, 10832, 1000],
    labels: ['choroidal neovascularization', 'diabetic macular edema', 'drusen', 'normal'],
    md5: {
      28: 'c68d92d5b585d8d81f7112f81e2d0842',
      64: 'e229e9440236b774d9f0dfef9d07bdaf',
      128: '0a97e76651ace45c5d943ee3f65b63ae',
      224: 'abc493b6d529d5de7569faaef2773ba3',
    },
  },
  {
    key: 'pneumoniamnist',
    name: 'PneumoniaMNIST',
    dim: 2,
    modality: 'x-ray',
    bodyPart: 'chest',
    task: 'binary',
    channels: 1,
    splits: [4708, 524, 624],
    labels: ['normal', 'pneumonia'],
    md5: {
      28: '28209eda62fecd6e6a2d98b1501bb15f',
      64: '8f4eceb4ccffa70c672198ea285246c6',
      128: '05b46931834c231683c68f40c47b2971',
      224: 'd6a3c71de1b945ea11211b03746c1fe1',
    },
  },
  {
    key: 'retinamnist',
    name: 'RetinaMNIST',
    dim: 2,
    modality: 'fundus photography',
    bodyPart: 'retina',
    task: 'ordinal',
    channels: 3,
    splits: [1080, 120, 400],
    labels: ['0', '1', '2', '3', '4'],
    md5: {
      28: 'bd4c0672f1bba3e3a89f0e4e876791e4',
      64: 'afda852cc34dcda56f86ad2b2457dbcc',
      128: 'e48e916a24454daf90583d4e6efb1a18',
      224: 'eae7e3b6f3fcbda4ae613ebdcbe35348',
    },
  },
  {
    key: 'breastmnist',
    name: 'BreastMNIST',
    dim: 2,
    modality: 'ultrasound',
    bodyPart: 'breast',
    task: 'binary',
    channels: 1,
    splits: [546, 78, 156],
    labels: ['malignant', 'normal, benign'],
    md5: {
      28: '750601b1f35ba3300ea97c75c52ff8f6',
      64: '742edef2a1fd1524b2efff4bd7ba9364',
      128: '363e4b3f8d712e9b5de15470a2aaadf1',
      224: 'b56378a6eefa9fed602bb16d192d4c8b',
    },
  },
  {
    key: 'bloodmnist',
    name: 'BloodMNIST',
    dim: 2,
    modality: 'microscope',
    bodyPart: 'blood',
    task: 'multi-class',
    channels: 3,
    splits: [11959, 1712, 3421],
    labels: [
      'basophil',
      'eosinophil',
      'erythroblast',
      'immature granulocytes(myelocytes, metamyelocytes and promyelocytes)',
      'lymphocyte',
      'monocyte',
      'neutrophil',
      'platelet',
    ],
    md5: {
      28: '7053d0359d879ad8a5505303e11de1dc',
      64: '2b94928a2ae4916078ca51e05b6b800b',
      128: 'adace1e0ed228fccda1f39692059dd4c',
      224: 'b718ff6835fcbdb22ba9eacccd7b2601',
    },
  },
  {
    key: 'tissuemnist',
    name: 'TissueMNIST',
    dim: 2,
    modality: 'microscope',
    bodyPart: 'kidney',
    task: 'multi-class',
    channels: 1,
    splits: [165466, 23640, 47280],
    labels: [
      'Collecting Duct, Connecting Tubule',
      'Distal Convoluted Tubule',
      'Glomerular endothelial cells',
      'Interstitial endothelial cells',
      'Leukocytes',
      'Podocytes',
      'Proximal Tubule Segments',
      'Thick Ascending Limb',
    ],
    md5: {
      28: 'ebe78ee8b05294063de985d821c1c34b',
      64: '123ece2eba09d0aa5d698fda57103344',
      128: '61b955355d7425a89687b06cca3ce0c2',
      224: 'b077128c4a949f0a4eb01517f9037b9c',
    },
  },
  {
    key: 'organamnist',
    name: 'OrganAMNIST',
    dim: 2,
    modality: 'ct',
    bodyPart: 'abdomen',
    task: 'multi-class',
    channels: 1,
    splits: [34561, 6491, 17778],
    labels: ORGAN_LABELS,
    md5: {
      28: '68e3f8846a6bd62f0c9bf841c0d9eacc',
      64: '2dcccc29b88e6da5a01161ef20cda288',
      128: 'eeae80d0a227a8d099027e1b3cfd3b60',
      224: '50747347e05c87dd3aaf92c49f9f3170',
    },
  },
  {
    key: 'organcmnist',
    name: 'OrganCMNIST',
    dim: 2,
    modality: 'ct',
    bodyPart: 'abdomen',
    task: 'multi-class',
    channels: 1,
    splits: [12975, 2392, 8216],
    labels: ORGAN_LABELS,
    md5: {
      28: 'b9ceb9546e10131b32923c5bbeaea2b1',
      64: '3ce34a8724ea6f548e6db4744d03b6a9',
      128: '773c1f009daa3fe5d9a2a201b2a7ed94',
      224: '050f5e875dc056f6768abf94ec9995d1',
    },
  },
  {
    key: 'organsmnist',
    name: 'OrganSMNIST',
    dim: 2,
    modality: 'ct',
    bodyPart: 'abdomen',
    task: 'multi-class',
    channels: 1,
    splits: [13932, 2452, 8827],
    labels: ORGAN_LABELS,
    md5: {
      28: '9ab87b696fb54e2a387ebe992d6ed5f1',
      64: '53a6d115339d874c25e309a994ff46d3',
      128: 'ded0c5fa01a95dc4978b956f613e9b8e',
      224: 'b354719e553fbbb2513d5533f52a4cb1',
    },
  },
  {
    // Note: the 3D organ set orders its classes differently from the 2D Organ{A,C,S} sets.
    key: 'organmnist3d',
    name: 'OrganMNIST3D',
    dim: 3,
    modality: 'ct',
    bodyPart: 'abdomen',
    task: 'multi-class',
    channels: 1,
    splits: [971, 161, 610],
    labels: [
      'liver',
      'kidney-right',
      'kidney-left',
      'femur-right',
      'femur-left',
      'bladder',
      'heart',
      'lung-right',
      'lung-left',
      'spleen',
      'pancreas',
    ],
    md5: { 28: 'a0c5a1ff56af4f155c46d46fbb45a2fe', 64: '58a2205adf14a9d0a189cb06dc78bf10' },
  },
  {
    key: 'nodulemnist3d',
    name: 'NoduleMNIST3D',
    dim: 3,
    modality: 'ct',
    bodyPart: 'chest',
    task: 'binary',
    channels: 1,
    splits: [1158, 165, 310],
    labels: ['benign', 'malignant'],
    md5: { 28: '8755a7e9e05a4d9ce80a24c3e7a256f3', 64: 'c47c5b7d457bf6332200d2ea6d64ecd8' },
  },
  {
    // Shapes (binary masks) derived from abdominal CT, so modality 'ct'.
    key: 'adrenalmnist3d',
    name: 'AdrenalMNIST3D',
    dim: 3,
    modality: 'ct',
    bodyPart: 'abdomen',
    task: 'binary',
    channels: 1,
    splits: [1188, 98, 298],
    labels: ['normal', 'hyperplasia'],
    md5: { 28: 'bbd3c5a5576322bc4cdfea780653b1ce', 64: '17721accfe9fb005146a47d33bc54b2f' },
  },
  {
    key: 'fracturemnist3d',
    name: 'FractureMNIST3D',
    dim: 3,
    modality: 'ct',
    bodyPart: 'chest',
    task: 'multi-class',
    channels: 1,
    splits: [1027, 103, 240],
    labels: ['buckle rib fracture', 'nondisplaced rib fracture', 'displaced rib fracture'],
    md5: { 28: '6aa7b0143a6b42da40027a9dda61302f', 64: 'f01d7e6316aedf4210da0da5b7437b42' },
  },
  {
    // Vessel shapes segmented from brain MR angiography.
    key: 'vesselmnist3d',
    name: 'VesselMNIST3D',
    dim: 3,
    modality: 'mr angiography',
    bodyPart: 'brain',
    task: 'binary',
    channels: 1,
    splits: [1335, 191, 382],
    labels: ['vessel', 'aneurysm'],
    md5: { 28: 'b41fd4f7e7e2feedddb201585ecafa1b', 64: '6bb274a8846e1097066dcd64e2c4520f' },
  },
  {
    // Electron microscopy of adult rat brain tissue.
    key: 'synapsemnist3d',
    name: 'SynapseMNIST3D',
    dim: 3,
    modality: 'electron microscopy',
    bodyPart: 'brain',
    task: 'binary',
    channels: 1,
    splits: [1230, 177, 352],
    labels: ['inhibitory synapse', 'excitatory synapse'],
    md5: { 28: '1235b78a3cd6280881dd7850a78eadb6', 64: '43bd14ebf3af9d3dd072446fedc14d5e' },
  },
];

/**
 * Byte sizes of the official files known here, for saying how much a download is (the MD5 decides what is right).
 * The files in the project's shared data folder, each matching its official MD5, were measured; bloodmnist.npz and
 * chestmnist.npz are the sizes in the Git LFS pointers of the Hugging Face mirror albertvillanova/medmnist-v2
 * (commit 0472595), which holds the v2 files, whose MD5 in medmnist/info.py v2.0.2 is the current one for these two.
 * Every other file's size is unknown here: `mf run --download` says so, and the server's Content-Length tells it.
 */
const BYTES: Readonly<Record<string, number>> = {
  'breastmnist.npz': 559_580,
  'retinamnist.npz': 3_291_041,
  'bloodmnist.npz': 35_461_855,
  'chestmnist.npz': 82_802_576,
  'adrenalmnist3d.npz': 276_833,
  'adrenalmnist3d_64.npz': 1_880_591,
  'vesselmnist3d.npz': 398_349,
  'vesselmnist3d_64.npz': 2_653_988,
};

function fromSpec(s: Spec): DatasetInfo {
  const files: DataFile[] = Object.entries(s.md5).map(([sz, md5]) => {
    const size = Number(sz);
    const file = size === 28 ? `${s.key}.npz` : `${s.key}_${size}.npz`;
    return { size, file, url: `${ZENODO}/${file}?download=1`, md5, bytes: BYTES[file] ?? null };
  });
  return {
    key: s.key,
    name: s.name,
    dim: s.dim,
    modality: s.modality,
    bodyPart: s.bodyPart,
    task: s.task,
    labels: s.labels,
    channels: s.channels,
    splits: { train: s.splits[0], val: s.splits[1], test: s.splits[2] },
    files: files.sort((a, b) => a.size - b.size),
    latent: { dim: s.dim === 2 ? 0 : 1, modality: MODALITIES.indexOf(s.modality), bodyPart: BODY_PARTS.indexOf(s.bodyPart) },
    license: s.license ?? 'CC BY 4.0',
    synthetic: false,
  };
}

/** Generated sets (src/data/synthetic.ts) in the same npz layout, for tests and smoke runs. */
export const SYNTHETIC_SHAPES_2D = ['disc', 'square', 'cross', 'ring'] as const;
export const SYNTHETIC_SHAPES_3D = ['ball', 'shell', 'two blobs'] as const;

function synthetic(key: string, name: string, dim: 2 | 3, labels: readonly string[], splits: [number, number, number]): DatasetInfo {
  return {
    key,
    name,
    dim,
    modality: 'synthetic',
    bodyPart: 'synthetic',
    task: 'multi-class',
    labels,
    channels: 1,
    splits: { train: splits[0], val: splits[1], test: splits[2] },
    files: [{ size: 28, file: `${key}.npz`, url: null, md5: null, bytes: null }],
    latent: { dim: dim === 2 ? 0 : 1, modality: MODALITIES.indexOf('synthetic'), bodyPart: BODY_PARTS.indexOf('synthetic') },
    license: 'generated',
    synthetic: true,
  };
}

/** The 18 official MedMNIST v2 datasets, in info.py order (12 2D, then 6 3D). */
export const MEDMNIST: readonly DatasetInfo[] = SPECS.map(fromSpec);

export const SYNTHETIC: readonly DatasetInfo[] = [
  synthetic('synthetic2d', 'Synthetic2D', 2, SYNTHETIC_SHAPES_2D, [512, 128, 128]),
  synthetic('synthetic3d', 'Synthetic3D', 3, SYNTHETIC_SHAPES_3D, [256, 64, 64]),
];

/** Every dataset the runner knows: the 18 official ones, then the synthetic ones. */
export const DATASETS: readonly DatasetInfo[] = [...MEDMNIST, ...SYNTHETIC];

const BY_KEY = new Map(DATASETS.map((d) => [d.key, d]));

/** Looks a dataset up by key (case-insensitive); an unknown key is a ConfigError naming the valid ones. */
export function getDataset(key: string): DatasetInfo {
  const ds = BY_KEY.get(key.toLowerCase());
  if (!ds) {
    throw new ConfigError(`unknown dataset '${key}'`, `valid names: ${DATASETS.map((d) => d.key).join(', ')}`);
  }
  return ds;
}

/**
 * Width of the model's output layer:
 * - multi-class: one logit per class (softmax cross-entropy);
 * - binary: 1 logit (sigmoid BCE; label 1 is the positive class);
 * - multi-label: one logit per finding (14 for ChestMNIST, independent sigmoids);
 * - ordinal: one logit per grade (5 for RetinaMNIST). MedMNIST scores RetinaMNIST with
 *   multi-class ACC/AUC, so the grades are trained as classes; a cumulative-link head would need
 *   K-1 outputs and is not what the benchmark reports.
 */
export function numOutputs(ds: DatasetInfo): number {
  switch (ds.task) {
    case 'binary':
      return 1;
    case 'multi-class':
    case 'multi-label':
    case 'ordinal':
      return ds.labels.length;
  }
}

/** Columns in the labels array: 14 for multi-label (one 0/1 per finding), otherwise 1 (the class index). */
export function numLabelColumns(ds: DatasetInfo): number {
  return ds.task === 'multi-label' ? ds.labels.length : 1;
}

/** Number of distinct classes a label column can take (2 for binary and each multi-label column). */
export function numClasses(ds: DatasetInfo): number {
  return ds.task === 'binary' || ds.task === 'multi-label' ? 2 : ds.labels.length;
}

/** Image sizes available for a dataset: 28/64/128/224 for 2D, 28/64 for 3D, 28 for synthetic. */
export function availableSizes(ds: DatasetInfo): number[] {
  return ds.files.map((f) => f.size);
}

/** The file record for one size; an unavailable size is a ConfigError listing the valid ones. */
export function fileFor(ds: DatasetInfo, size: number): DataFile {
  const f = ds.files.find((x) => x.size === size);
  if (!f) {
    throw new ConfigError(`${ds.key} has no ${size}px version`, `valid sizes: ${availableSizes(ds).join(', ')}`);
  }
  return f;
}
