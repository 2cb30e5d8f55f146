{{/* An image reference: <registry>/<name>:<tag>. */}}
{{- define "yelb.image" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- if $root.Values.image.registry -}}
{{ printf "%s/%s:%s" (trimSuffix "/" $root.Values.image.registry) $name $root.Values.image.tag }}
{{- else -}}
{{ printf "%s:%s" $name $root.Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "yelb.labels" -}}
app.kubernetes.io/part-of: yelb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The restricted pod security profile, for a given UID. */}}
{{- define "yelb.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ . }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "yelb.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: ["ALL"]}
{{- end -}}
