// Every data set a run can name, by key: the MedMNIST registry's (and its synthetic sets), MNIST and CIFAR-10/100.
// `mf eval`, `mf predict` and `mf serve` rebuild a model's heads from these keys; the registry alone knows only the
// MedMNIST ones. Node only: mnist.ts and cifar.ts read files.
import { cifarInfo, isCifar } from './cifar.ts';
import { isMnist, MNIST } from './mnist.ts';
import { type DatasetInfo, DATASETS, getDataset } from './registry.ts';
import { ConfigError } from '../errors.ts';

/** The data set `key` names (any case); an unknown key is one ConfigError line listing the known ones. */
export function datasetInfo(key: string): DatasetInfo {
  if (isMnist(key)) return MNIST;
  if (isCifar(key)) return cifarInfo(key);
  try {
    return getDataset(key);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new ConfigError(
      `unknown dataset '${key}'`,
      `valid names: ${[...DATASETS.map((d) => d.key), 'mnist', 'cifar10', 'cifar100'].join(', ')}`,
    );
  }
}
