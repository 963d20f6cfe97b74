"""Text queries: open_clip encoders, one CLIP embedding per global cluster, LERF relevancy, `splatseg query`.

The public surface is re-exported here; the modules behind it are small and named for what they hold:
`clip` (encoders and where weights come from), `views` (which views see a cluster, crop cameras), `embeddings`
(computing and storing cluster embeddings), `relevancy` (the arithmetic), `query` (orchestration, `TextIndex`);
the per-Gaussian language field: `field` (building it), `field_query` (relevancy per Gaussian), `field_index`
(workspace, `prepare-text --field`, the index `query` and the viewer use); `ground_truth` (tests and benchmarks
only, never on a product path: a CLIP stand-in made from a synthetic scene's labels), `evaluate` (the
localisation protocol the field's tests and benchmark share).
"""

from __future__ import annotations

from .clip import DEFAULT_CLIP_MODEL as DEFAULT_CLIP_MODEL
from .clip import DEFAULT_CLIP_PRETRAINED as DEFAULT_CLIP_PRETRAINED
from .clip import ClipEncoder as ClipEncoder
from .clip import is_online as is_online
from .clip import load_clip as load_clip
from .embeddings import EMBEDDINGS_FILE as EMBEDDINGS_FILE
from .embeddings import LEVELS as LEVELS
from .embeddings import ClusterEmbeddings as ClusterEmbeddings
from .embeddings import LevelEmbeddings as LevelEmbeddings
from .embeddings import compute_cluster_embeddings as compute_cluster_embeddings
from .embeddings import load_embeddings as load_embeddings
from .embeddings import save_embeddings as save_embeddings
from .field import FIELD_FILE as FIELD_FILE
from .field import LanguageField as LanguageField
from .field import build_language_field as build_language_field
from .field_index import FieldTextIndex as FieldTextIndex
from .field_index import open_text_index as open_text_index
from .field_index import prepare_field as prepare_field
from .field_query import FieldIndex as FieldIndex
from .query import ClusterMatch as ClusterMatch
from .query import ClusterSource as ClusterSource
from .query import PrepareReport as PrepareReport
from .query import QueryResult as QueryResult
from .query import TextIndex as TextIndex
from .query import clusters_from_field as clusters_from_field
from .query import prepare_text as prepare_text
from .relevancy import CANONICAL_NEGATIVES as CANONICAL_NEGATIVES
from .relevancy import DEFAULT_THRESHOLD as DEFAULT_THRESHOLD
from .relevancy import gaussian_relevancy as gaussian_relevancy
from .relevancy import heat_colors as heat_colors
from .relevancy import relevancy as relevancy
