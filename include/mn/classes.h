/* Class names as every task model keeps them: one heap array of fixed-size strings, so that a
 * name is m->class_names[k] in each task and a checkpoint's names come back as they were saved
 * (up to MN_CLASS_NAME_LEN - 1 bytes each; longer ones are refused where they enter). */
#ifndef MN_CLASSES_H
#define MN_CLASSES_H

#define MN_CLASS_NAME_LEN 64

typedef char mn_class_name[MN_CLASS_NAME_LEN];

#endif
