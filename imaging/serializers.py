"""The imaging API's output: cases, a series' metadata for the viewer, tumour boxes (core/serializers.py says
why output serializers). The volumes themselves are binary (declared as such in api.py)."""

from rest_framework import serializers

from core.constants import CASE_ATTRIBUTES
from core.serializers import NUMBER, NUMBERS, DictSerializer, JSONValue
from imaging.models import Case

INTEGERS = {"type": "array", "items": {"type": "integer"}}


class BoxSerializer(serializers.Serializer):
    """A tumour box on one slice (pixels, x1 and y1 exclusive): drawn by a coordinator or from the manifest."""

    slice_index = serializers.IntegerField(min_value=0)
    x0 = serializers.IntegerField(min_value=0)
    y0 = serializers.IntegerField(min_value=0)
    x1 = serializers.IntegerField(min_value=1)
    y1 = serializers.IntegerField(min_value=1)
    source = serializers.CharField(read_only=True)


class BoxReasonSerializer(serializers.Serializer):
    """Why a box of a frozen case is removed (an audited correction); optional elsewhere."""

    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class BoxWriteSerializer(BoxSerializer):
    """A box to draw; ``reason`` is required on a frozen case, where the change is an audited correction."""

    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, write_only=True)


class CaseSeriesSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    sequence_code = serializers.CharField()
    plane = serializers.CharField()
    n_slices = serializers.IntegerField()
    series_number = serializers.IntegerField(allow_null=True)


class CaseSerializer(serializers.ModelSerializer):
    volume_ml = serializers.FloatField(read_only=True, allow_null=True,
                                       help_text="ellipsoid volume of the tumour; null without its three sizes")
    series = CaseSeriesSerializer(many=True, read_only=True)

    class Meta:
        model = Case
        fields = ("id", "pseudonym", "truth", *CASE_ATTRIBUTES, "volume_ml", "is_synthetic", "series")


class CaseRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    pseudonym = serializers.CharField()


def _meta(schema: dict, help_text: str) -> JSONValue:
    return JSONValue(schema, allow_null=True, help_text=help_text)


class SeriesMetaSerializer(DictSerializer):
    """What the viewer needs to draw a series (the volume file's layout and geometry). ``case``, the mapping
    and ``boxes`` only for coordinators; never a DICOM header, never a source UID."""

    id = serializers.IntegerField()
    sequence_code = serializers.CharField()
    plane = serializers.CharField()
    n_slices = serializers.IntegerField()
    rows = serializers.IntegerField()
    cols = serializers.IntegerField()
    volume_url = serializers.CharField()
    volume_sha256 = serializers.CharField()
    format = _meta({"type": "string"}, "the volume file's format")
    shape = _meta(INTEGERS, "frames, rows, cols")
    pixel_spacing = _meta(NUMBERS, "mm between rows, between columns")
    slice_thickness = _meta(NUMBER, "mm")
    slice_spacing = _meta(NUMBER, "mm between slice centres (median)")
    slice_positions = _meta({"type": "array", "items": NUMBERS}, "each frame's first-pixel centre (mm)")
    slice_locations = _meta(NUMBERS, "each frame's position along the slice normal (mm)")
    orientation = _meta(NUMBERS, "the six direction cosines of rows and columns")
    temporal_positions = _meta(INTEGERS, "each frame's phase of a dynamic series")
    phases = _meta({"type": "integer"}, "number of phases")
    rescale = _meta({"type": "object", "properties": {"slope": NUMBER, "intercept": NUMBER}},
                    "stored value to real value")
    window = _meta({"type": "object", "properties": {"center": NUMBER, "width": NUMBER,
                                                     "source": {"type": "string"}}}, "the default window")
    value_range = _meta(NUMBERS, "lowest and highest real value")
    instance_numbers = _meta(INTEGERS, "each frame's DICOM instance number")
    case = CaseRefSerializer(required=False)
    mapped_code = serializers.CharField(required=False, allow_blank=True)
    mapped_rule = serializers.CharField(required=False, allow_blank=True)
    override_code = serializers.CharField(required=False, allow_blank=True)
    boxes = BoxSerializer(many=True, required=False)
